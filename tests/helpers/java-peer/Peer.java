// java-peer: an SMTP STARTTLS peer on Java's SunJSSE (OpenJDK 17), used by captures/generate.sh to put
// Java's TLS stack on the wire. A single-file program: `java Peer.java client|server ...`.
//
// client: connect, plaintext EHLO + STARTTLS, TLS over the same socket (1.2 or 1.3, optionally with a
//         client certificate, offered whatever the CertificateRequest's CA list says), then EHLO /
//         MAIL / RCPT / DATA / body / QUIT inside TLS; a refusal is logged.
// server: accept one connection, 220 banner, EHLO advertising STARTTLS, 220 to STARTTLS, TLS
//         (server.chain.pem; client certificate none / ask = setWantClientAuth / require =
//         setNeedClientAuth, checked by the default PKIX trust manager against root.cert.pem: SunJSSE
//         checks the clientAuth EKU), then answer the SMTP dialogue inside TLS.
//
// SunJSSE cannot write a key log: the truth about each session is this program's configuration
// and its log (stderr: "client certificate requested", "TLS established ... client certificates: N",
// "TLS handshake failed: ..."). Lab use only.
import java.io.*;
import java.net.*;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.security.*;
import java.security.cert.*;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.*;
import javax.net.ssl.*;

public class Peer {
    static boolean serverMode;

    static void log(String s) { System.err.print(s); System.err.flush(); }

    static void send(OutputStream w, String s) throws IOException {
        String who = serverMode ? "S: " : "C: ";
        for (String l : s.split("(?<=\n)")) log(who + l);
        w.write(s.getBytes(StandardCharsets.ISO_8859_1));
        w.flush();
    }

    // one line, byte by byte (before STARTTLS nothing after it may be consumed)
    static String readLine(InputStream r) throws IOException {
        StringBuilder b = new StringBuilder();
        while (true) {
            int c = r.read();
            if (c < 0) {
                if (b.length() == 0) throw new EOFException("connection closed");
                return b.toString();
            }
            b.append((char) c);
            if (c == '\n') return b.toString();
        }
    }

    static int readReply(InputStream r) throws IOException {
        while (true) {
            String line = readLine(r);
            log((serverMode ? "C: " : "S: ") + line);
            if (line.length() < 4 || line.charAt(3) != '-') return Integer.parseInt(line.substring(0, 3));
        }
    }

    static Map<String, String> opts = new HashMap<>();

    static String opt(String k, String dflt) { return opts.getOrDefault(k, dflt); }

    static List<X509Certificate> certs(String path) throws Exception {
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        List<X509Certificate> out = new ArrayList<>();
        try (InputStream in = new FileInputStream(path)) {
            for (java.security.cert.Certificate c : cf.generateCertificates(in)) out.add((X509Certificate) c);
        }
        return out;
    }

    static PrivateKey key(String path) throws Exception {
        String pem = new String(Files.readAllBytes(Paths.get(path)), StandardCharsets.US_ASCII);
        String b64 = pem.replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
        PKCS8EncodedKeySpec spec = new PKCS8EncodedKeySpec(Base64.getDecoder().decode(b64));
        for (String alg : new String[] {"EC", "RSA", "Ed25519"}) {
            try { return KeyFactory.getInstance(alg).generatePrivate(spec); } catch (Exception e) { }
        }
        throw new IllegalArgumentException(path + ": not a PKCS#8 EC/RSA/Ed25519 key");
    }

    // A key manager with one fixed chain, chosen whatever the peer's CA list says.
    static X509KeyManager fixedKeyManager(List<X509Certificate> chain, PrivateKey k) {
        X509Certificate[] arr = chain.toArray(new X509Certificate[0]);
        return new X509ExtendedKeyManager() {
            public String[] getClientAliases(String t, Principal[] i) { return new String[] {"peer"}; }
            public String chooseClientAlias(String[] t, Principal[] i, Socket s) {
                log("client certificate requested: sending " + arr.length + " certificate(s)\n");
                return "peer";
            }
            public String chooseEngineClientAlias(String[] t, Principal[] i, SSLEngine e) { return "peer"; }
            public String[] getServerAliases(String t, Principal[] i) { return new String[] {"peer"}; }
            public String chooseServerAlias(String t, Principal[] i, Socket s) { return "peer"; }
            public String chooseEngineServerAlias(String t, Principal[] i, SSLEngine e) { return "peer"; }
            public X509Certificate[] getCertificateChain(String a) { return arr; }
            public PrivateKey getPrivateKey(String a) { return k; }
        };
    }

    static TrustManager[] trust(String caPath) throws Exception {
        KeyStore ks = KeyStore.getInstance(KeyStore.getDefaultType());
        ks.load(null, null);
        int n = 0;
        for (X509Certificate c : certs(caPath)) ks.setCertificateEntry("ca" + n++, c);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance("PKIX");
        tmf.init(ks);
        return tmf.getTrustManagers();
    }

    static String[] protocols() {
        switch (opt("tls", "1.3")) {
            case "1.2": return new String[] {"TLSv1.2"};
            case "1.3": return new String[] {"TLSv1.3"};
            default: return new String[] {"TLSv1.3", "TLSv1.2"};
        }
    }

    static void client() throws Exception {
        SSLContext ctx = SSLContext.getInstance("TLS");
        KeyManager[] kms = null;
        if (opts.containsKey("cert")) {
            kms = new KeyManager[] {fixedKeyManager(certs(opt("cert", "")), key(opt("key", "")))};
        }
        ctx.init(kms, trust(opt("ca", "root.cert.pem")), null);
        Socket tcp = new Socket();
        if (opts.containsKey("bind")) tcp.bind(new InetSocketAddress(opt("bind", ""), 0));
        tcp.connect(new InetSocketAddress(opt("host", "127.0.0.1"), Integer.parseInt(opt("port", "0"))), 10000);
        tcp.setSoTimeout(30000);
        InputStream in = tcp.getInputStream();
        OutputStream out = tcp.getOutputStream();
        if (readReply(in) != 220) throw new IOException("no 220 banner");
        send(out, "EHLO out.lab.test\r\n");
        if (readReply(in) != 250) throw new IOException("EHLO refused");
        send(out, "STARTTLS\r\n");
        if (readReply(in) != 220) throw new IOException("STARTTLS refused");
        String sni = opt("sni", "mx.lab.test");
        SSLSocket s = (SSLSocket) ctx.getSocketFactory().createSocket(tcp, sni, tcp.getPort(), true);
        s.setUseClientMode(true);
        s.setEnabledProtocols(protocols());
        SSLParameters p = s.getSSLParameters();
        p.setServerNames(List.of(new SNIHostName(sni)));
        p.setEndpointIdentificationAlgorithm("HTTPS");
        s.setSSLParameters(p);
        s.startHandshake();
        log("TLS established: " + s.getSession().getProtocol() + " " + s.getSession().getCipherSuite() + "\n");
        InputStream r = new BufferedInputStream(s.getInputStream());
        OutputStream w = s.getOutputStream();
        String name = opt("name", "java-peer");
        String body = "Subject: ekuwatch test " + name + "\r\n\r\nhello from " + name + "\r\n.\r\n";
        String[] cmds = {"EHLO out.lab.test\r\n", "MAIL FROM:<sender@out.lab.test>\r\n", "RCPT TO:<root@lab.test>\r\n",
            "DATA\r\n", body, "QUIT\r\n"};
        int[] want = {250, 250, 250, 354, 250, 221};
        for (int i = 0; i < cmds.length; i++) {
            send(w, cmds[i]);
            int code = readReply(r);
            if (code != want[i]) {
                // the server refused (Postfix req_ccert: 421 and close): say QUIT as swaks would
                try { send(w, "QUIT\r\n"); while (r.read() >= 0) { } } catch (IOException e) { }
                throw new IOException("expected " + want[i] + ", got " + code);
            }
        }
        s.close(); // close_notify
    }

    static void server() throws Exception {
        SSLContext ctx = SSLContext.getInstance("TLS");
        KeyManager[] kms = {fixedKeyManager(certs(opt("cert", "server.chain.pem")), key(opt("key", "server.key.pem")))};
        String auth = opt("client-auth", "none");
        ctx.init(kms, auth.equals("none") ? null : trust(opt("ca", "root.cert.pem")), null);
        ServerSocket ln = new ServerSocket();
        ln.bind(new InetSocketAddress(opt("host", "127.0.0.1"), Integer.parseInt(opt("port", "0"))));
        log("listening on " + ln.getLocalSocketAddress() + " (client auth: " + auth + ")\n");
        Socket tcp = ln.accept();
        ln.close();
        log("connection from " + tcp.getRemoteSocketAddress() + "\n");
        tcp.setSoTimeout(30000);
        InputStream in = tcp.getInputStream();
        OutputStream out = tcp.getOutputStream();
        send(out, "220 mx.lab.test ESMTP java-peer\r\n");
        while (true) {
            String line = readLine(in);
            log("C: " + line);
            String cmd = line.trim().toUpperCase();
            if (cmd.startsWith("EHLO")) send(out, "250-mx.lab.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 STARTTLS\r\n");
            else if (cmd.startsWith("HELO")) send(out, "250 mx.lab.test\r\n");
            else if (cmd.equals("STARTTLS")) { send(out, "220 2.0.0 Ready to start TLS\r\n"); break; }
            else if (cmd.equals("QUIT")) { send(out, "221 2.0.0 Bye\r\n"); throw new IOException("client quit before STARTTLS"); }
            else send(out, "530 5.7.0 Must issue a STARTTLS command first\r\n");
        }
        SSLSocket s = (SSLSocket) ctx.getSocketFactory().createSocket(tcp, null, true);
        s.setUseClientMode(false);
        s.setEnabledProtocols(protocols());
        if (auth.equals("ask")) s.setWantClientAuth(true);
        if (auth.equals("require")) s.setNeedClientAuth(true);
        try {
            s.startHandshake();
        } catch (IOException e) {
            log("TLS handshake failed: " + e + "\n");
            s.close();
            throw e;
        }
        int n = 0;
        try { n = s.getSession().getPeerCertificates().length; } catch (SSLPeerUnverifiedException e) { }
        log("TLS established: " + s.getSession().getProtocol() + " " + s.getSession().getCipherSuite()
            + ", client certificates: " + n + "\n");
        InputStream r = new BufferedInputStream(s.getInputStream());
        OutputStream w = s.getOutputStream();
        boolean inData = false;
        while (true) {
            String line;
            try { line = readLine(r); } catch (IOException e) { log("client closed the connection (" + e + ")\n"); break; }
            log("C: " + line);
            if (inData) {
                if (line.equals(".\r\n") || line.equals(".\n")) { inData = false; send(w, "250 2.0.0 Ok: queued\r\n"); }
                continue;
            }
            String cmd = line.trim().toUpperCase();
            if (cmd.startsWith("EHLO")) send(w, "250-mx.lab.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
            else if (cmd.startsWith("HELO") || cmd.startsWith("MAIL") || cmd.startsWith("RCPT") || cmd.startsWith("RSET")
                || cmd.equals("NOOP")) send(w, "250 2.1.0 Ok\r\n");
            else if (cmd.equals("DATA")) { inData = true; send(w, "354 End data with <CR><LF>.<CR><LF>\r\n"); }
            else if (cmd.equals("QUIT")) { send(w, "221 2.0.0 Bye\r\n"); break; }
            else send(w, "502 5.5.2 Error: command not recognized\r\n");
        }
        s.close();
    }

    public static void main(String[] args) {
        if (args.length < 1 || !(args[0].equals("client") || args[0].equals("server"))) {
            System.err.println("usage: java Peer.java client|server --port N [--host 127.0.0.1] [--bind 127.0.0.2] [--tls 1.2|1.3|any]\n"
                + "  [--ca root.cert.pem] [--sni mx.lab.test] [--cert chain.pem --key key.pem] [--name NAME]\n"
                + "  server: [--client-auth none|ask|require] (cert/key default server.chain.pem / server.key.pem)");
            System.exit(2);
        }
        serverMode = args[0].equals("server");
        for (int i = 1; i + 1 < args.length; i += 2) {
            if (!args[i].startsWith("--")) { System.err.println("bad argument " + args[i]); System.exit(2); }
            opts.put(args[i].substring(2), args[i + 1]);
        }
        if (!opts.containsKey("name") && System.getenv("NAME") != null) opts.put("name", System.getenv("NAME"));
        try {
            if (serverMode) server(); else client();
        } catch (Exception e) {
            log("java-peer " + args[0] + ": error: " + e + "\n");
            System.exit(1);
        }
    }
}
