// go-peer: an SMTP STARTTLS peer on Go's crypto/tls, used by captures/generate.sh to put Go's TLS
// stack on the wire next to OpenSSL, GnuTLS and rustls. Standard library only.
//
// client: connect, plaintext EHLO + STARTTLS, TLS handshake (1.2 or 1.3, optionally with a client
//
//	certificate, sent whatever the CertificateRequest's CA list says), then EHLO / MAIL /
//	RCPT / DATA / body / QUIT over TLS; a refusal (421 after the handshake, close) is logged.
//
// server: accept one connection, 220 banner, EHLO advertising STARTTLS, 220 to STARTTLS, TLS
//
//	(server.chain.pem; client certificate none / ask = VerifyClientCertIfGiven / require =
//	RequireAndVerifyClientCert against root.cert.pem: Go checks the clientAuth EKU), then
//	answer the SMTP dialogue inside TLS.
//
// Both write an NSS key log (--keylog PATH; tls.Config.KeyLogWriter). --sessions N: the client
// makes N connections one after the other with one session cache (the later ones resume with the
// server's ticket: TLS 1.3 PSK, TLS 1.2 session ticket); the server accepts N connections with one
// configuration (one ticket key). Lab use only.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

var serverMode bool

func logf(format string, a ...any) { fmt.Fprintf(os.Stderr, format, a...) }

func send(w io.Writer, s string) error {
	who := "C:"
	if serverMode {
		who = "S:"
	}
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			logf("%s %s", who, l)
		}
	}
	_, err := io.WriteString(w, s)
	return err
}

// readLine reads one line byte by byte (before STARTTLS nothing after it may be consumed).
func readLine(r io.Reader) (string, error) {
	var buf []byte
	b := make([]byte, 1)
	for {
		n, err := r.Read(b)
		if n == 1 {
			buf = append(buf, b[0])
			if b[0] == '\n' {
				return string(buf), nil
			}
		}
		if err != nil {
			if len(buf) > 0 && err == io.EOF {
				return string(buf), nil
			}
			return string(buf), err
		}
	}
}

func readReply(r io.Reader) (int, string, error) {
	all := ""
	for {
		line, err := readLine(r)
		if err != nil {
			return 0, all, fmt.Errorf("waiting for a reply: %w", err)
		}
		who := "S:"
		if serverMode {
			who = "C:"
		}
		logf("%s %s", who, line)
		all += line
		if len(line) < 4 || line[3] != '-' {
			var code int
			if _, err := fmt.Sscanf(line, "%3d", &code); err != nil {
				return 0, all, fmt.Errorf("bad reply line %q", line)
			}
			return code, all, nil
		}
	}
}

func expect(r io.Reader, want int) error {
	code, text, err := readReply(r)
	if err != nil {
		return err
	}
	if code != want {
		return fmt.Errorf("expected %d, got %s", want, strings.TrimSpace(text))
	}
	return nil
}

type opts struct {
	host, bind, ca, sni, cert, key, keylog, name, clientAuth, version string
	port, sessions                                                    int
}

func tlsVersions(v string) (uint16, uint16) {
	switch v {
	case "1.2":
		return tls.VersionTLS12, tls.VersionTLS12
	case "1.3":
		return tls.VersionTLS13, tls.VersionTLS13
	}
	return tls.VersionTLS12, tls.VersionTLS13
}

func roots(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", path)
	}
	return p, nil
}

func keyLog(o *opts) (io.Writer, error) {
	if o.keylog == "" {
		if p := os.Getenv("SSLKEYLOGFILE"); p != "" {
			o.keylog = p
		} else {
			return nil, nil
		}
	}
	return os.OpenFile(o.keylog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
}

func client(o *opts) error {
	pool, err := roots(o.ca)
	if err != nil {
		return err
	}
	minV, maxV := tlsVersions(o.version)
	cfg := &tls.Config{ServerName: o.sni, RootCAs: pool, MinVersion: minV, MaxVersion: maxV}
	if o.cert != "" {
		pair, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			return err
		}
		// Send the configured chain whatever the CertificateRequest's CA list says (the default
		// would send an empty Certificate for a chain not issued by a listed CA).
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			logf("client certificate requested: sending %d certificate(s)\n", len(pair.Certificate))
			return &pair, nil
		}
	} else {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			logf("client certificate requested: sending none\n")
			return &tls.Certificate{}, nil
		}
	}
	if w, err := keyLog(o); err != nil {
		return err
	} else if w != nil {
		cfg.KeyLogWriter = w
	}
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(8)
	for i := 0; i < o.sessions; i++ {
		if i > 0 {
			time.Sleep(300 * time.Millisecond)
		}
		if err := clientSession(o, cfg); err != nil {
			return err
		}
	}
	return nil
}

func clientSession(o *opts, cfg *tls.Config) error {
	d := net.Dialer{Timeout: 10 * time.Second}
	if o.bind != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(o.bind)}
	}
	tcp, err := d.Dial("tcp", fmt.Sprintf("%s:%d", o.host, o.port))
	if err != nil {
		return err
	}
	defer tcp.Close()
	tcp.SetDeadline(time.Now().Add(30 * time.Second))
	if err := expect(tcp, 220); err != nil {
		return err
	}
	if err := send(tcp, "EHLO out.lab.test\r\n"); err != nil {
		return err
	}
	_, ehlo, err := readReply(tcp)
	if err != nil {
		return err
	}
	if !strings.Contains(strings.ToUpper(ehlo), "STARTTLS") {
		return errors.New("server does not offer STARTTLS")
	}
	if err := send(tcp, "STARTTLS\r\n"); err != nil {
		return err
	}
	if err := expect(tcp, 220); err != nil {
		return err
	}
	c := tls.Client(tcp, cfg)
	if err := c.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	st := c.ConnectionState()
	logf("TLS established: version 0x%04x cipher %s resumed %v\n", st.Version, tls.CipherSuiteName(st.CipherSuite), st.DidResume)
	r := bufio.NewReader(c)
	body := fmt.Sprintf("Subject: ekuwatch test %s\r\n\r\nhello from %s\r\n.\r\n", o.name, o.name)
	steps := []struct {
		cmd  string
		want int
	}{
		{"EHLO out.lab.test\r\n", 250},
		{"MAIL FROM:<sender@out.lab.test>\r\n", 250},
		{"RCPT TO:<root@lab.test>\r\n", 250},
		{"DATA\r\n", 354},
		{body, 250},
		{"QUIT\r\n", 221},
	}
	for _, s := range steps {
		if err := send(c, s.cmd); err != nil {
			return err
		}
		code, text, err := readReply(r)
		if err != nil {
			// e.g. a server that refused our certificate after the handshake (alert, close)
			return err
		}
		if code != s.want {
			// the server refused (Postfix req_ccert: 421 and close): say QUIT as swaks would
			send(c, "QUIT\r\n")
			io.Copy(io.Discard, r)
			return fmt.Errorf("expected %d, got %s", s.want, strings.TrimSpace(text))
		}
	}
	c.Close() // close_notify
	io.Copy(io.Discard, r)
	return nil
}

func server(o *opts) error {
	minV, maxV := tlsVersions(o.version)
	pair, err := tls.LoadX509KeyPair(o.cert, o.key)
	if err != nil {
		return err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: minV, MaxVersion: maxV}
	switch o.clientAuth {
	case "none":
	case "ask", "require":
		pool, err := roots(o.ca)
		if err != nil {
			return err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if o.clientAuth == "require" {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	default:
		return fmt.Errorf("--client-auth none|ask|require, not %q", o.clientAuth)
	}
	if w, err := keyLog(o); err != nil {
		return err
	} else if w != nil {
		cfg.KeyLogWriter = w
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", o.host, o.port))
	if err != nil {
		return err
	}
	logf("listening on %s:%d (client auth: %s)\n", o.host, o.port, o.clientAuth)
	defer ln.Close()
	var last error
	for i := 0; i < o.sessions; i++ {
		tcp, err := ln.Accept()
		if err != nil {
			return err
		}
		last = serverSession(cfg, tcp)
	}
	return last
}

func serverSession(cfg *tls.Config, tcp net.Conn) error {
	defer tcp.Close()
	logf("connection from %s\n", tcp.RemoteAddr())
	tcp.SetDeadline(time.Now().Add(30 * time.Second))
	send(tcp, "220 mx.lab.test ESMTP go-peer\r\n")
	for {
		line, err := readLine(tcp)
		if err != nil {
			return fmt.Errorf("client closed before STARTTLS: %w", err)
		}
		logf("C: %s", line)
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			send(tcp, "250-mx.lab.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 STARTTLS\r\n")
		case strings.HasPrefix(cmd, "HELO"):
			send(tcp, "250 mx.lab.test\r\n")
		case cmd == "STARTTLS":
			send(tcp, "220 2.0.0 Ready to start TLS\r\n")
			goto tlsStart
		case cmd == "QUIT":
			send(tcp, "221 2.0.0 Bye\r\n")
			return errors.New("client quit before STARTTLS")
		default:
			send(tcp, "530 5.7.0 Must issue a STARTTLS command first\r\n")
		}
	}
tlsStart:
	c := tls.Server(tcp, cfg)
	if err := c.Handshake(); err != nil {
		// crypto/tls has already sent the alert for this error
		logf("TLS handshake failed: %v\n", err)
		c.Close()
		return err
	}
	st := c.ConnectionState()
	logf("TLS established: version 0x%04x cipher %s, client certificates: %d, resumed %v\n",
		st.Version, tls.CipherSuiteName(st.CipherSuite), len(st.PeerCertificates), st.DidResume)
	r := bufio.NewReader(c)
	inData := false
	for {
		line, err := readLine(r)
		if err != nil {
			logf("client closed the connection (%v)\n", err)
			break
		}
		logf("C: %s", line)
		if inData {
			if line == ".\r\n" || line == ".\n" {
				inData = false
				send(c, "250 2.0.0 Ok: queued\r\n")
			}
			continue
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			send(c, "250-mx.lab.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
		case strings.HasPrefix(cmd, "HELO"), strings.HasPrefix(cmd, "MAIL"), strings.HasPrefix(cmd, "RCPT"),
			strings.HasPrefix(cmd, "RSET"), cmd == "NOOP":
			send(c, "250 2.1.0 Ok\r\n")
		case cmd == "DATA":
			inData = true
			send(c, "354 End data with <CR><LF>.<CR><LF>\r\n")
		case cmd == "QUIT":
			send(c, "221 2.0.0 Bye\r\n")
			c.Close()
			return nil
		default:
			send(c, "502 5.5.2 Error: command not recognized\r\n")
		}
	}
	c.Close()
	return nil
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "client" && os.Args[1] != "server") {
		fmt.Fprintln(os.Stderr, "usage: go-peer client|server --port N [--host 127.0.0.1] [--bind 127.0.0.2] [--tls 1.2|1.3|any]\n"+
			"  [--ca root.cert.pem] [--sni mx.lab.test] [--cert chain.pem --key key.pem] [--keylog PATH] [--sessions N]\n"+
			"  server: [--client-auth none|ask|require] (cert/key default server.chain.pem / server.key.pem)")
		os.Exit(2)
	}
	mode := os.Args[1]
	serverMode = mode == "server"
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	o := &opts{}
	fs.StringVar(&o.host, "host", "127.0.0.1", "server address")
	fs.IntVar(&o.port, "port", 0, "port")
	fs.StringVar(&o.bind, "bind", "", "client source address")
	fs.StringVar(&o.ca, "ca", "root.cert.pem", "CA file")
	fs.StringVar(&o.sni, "sni", "mx.lab.test", "server name")
	fs.StringVar(&o.cert, "cert", "", "certificate chain (PEM)")
	fs.StringVar(&o.key, "key", "", "private key (PEM)")
	fs.StringVar(&o.keylog, "keylog", "", "NSS key log file")
	fs.StringVar(&o.clientAuth, "client-auth", "none", "server: none|ask|require")
	fs.StringVar(&o.version, "tls", "1.3", "1.2|1.3|any")
	fs.StringVar(&o.name, "name", os.Getenv("NAME"), "scenario name (message subject)")
	fs.IntVar(&o.sessions, "sessions", 1, "connections, one after the other, sharing TLS sessions")
	fs.Parse(os.Args[2:])
	if o.port == 0 {
		fmt.Fprintln(os.Stderr, "--port is required")
		os.Exit(2)
	}
	if serverMode && o.cert == "" {
		o.cert, o.key = "server.chain.pem", "server.key.pem"
	}
	var err error
	if serverMode {
		err = server(o)
	} else {
		err = client(o)
	}
	if err != nil {
		logf("go-peer %s: error: %v\n", mode, err)
		os.Exit(1)
	}
}
