/* wolfssl-peer: an SMTP STARTTLS peer on wolfSSL (Debian's libwolfssl-dev), used by
 * captures/generate.sh to put wolfSSL on the wire next to the other stacks. Same command line as
 * go-peer:
 *
 * client: connect, plaintext EHLO + STARTTLS, TLS handshake (1.2 or 1.3; the configured chain is
 *         sent when a certificate is requested, an empty Certificate otherwise), then EHLO / MAIL /
 *         RCPT / DATA / body / QUIT over TLS; a refusal (alert, or 4xx/5xx and close) is logged.
 * server: accept one connection, 220 banner, EHLO advertising STARTTLS, 220 to STARTTLS, TLS
 *         (server.chain.pem; client certificate none / ask = WOLFSSL_VERIFY_PEER / require = +
 *         FAIL_IF_NO_PEER_CERT, verified against root.cert.pem), then answer the SMTP dialogue.
 *
 * No key log: Debian's wolfSSL is built without HAVE_SECRET_CALLBACK. Log lines the capture
 * script and the tests read: "TLS established: ... client certificates: N" and
 * "TLS handshake failed: ...". Lab use only.
 *
 * Build: cc -O2 -o wolfssl-peer wolfssl-peer.c -lwolfssl
 */
#define _GNU_SOURCE /* strcasestr */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static int server_mode;
static WOLFSSL *tls; /* NULL before STARTTLS */
static int sock = -1;

static const char *host = "127.0.0.1", *bind_addr, *version = "1.3", *ca = "root.cert.pem",
                  *sni = "mx.lab.test", *cert, *key, *client_auth = "none", *name;
static int port;

static void die(const char *msg) {
    fprintf(stderr, "wolfssl-peer %s: error: %s\n", server_mode ? "server" : "client", msg);
    exit(1);
}

static int io_read(char *b, int n) {
    return tls ? wolfSSL_read(tls, b, n) : (int)read(sock, b, (size_t)n);
}

static void send_str(const char *s) {
    const char *p = s;
    while (*p) { /* log each line */
        const char *e = strchr(p, '\n');
        int len = e ? (int)(e - p + 1) : (int)strlen(p);
        fprintf(stderr, "%s %.*s", server_mode ? "S:" : "C:", len, p);
        p += len;
    }
    int n = (int)strlen(s);
    int w = tls ? wolfSSL_write(tls, s, n) : (int)write(sock, s, (size_t)n);
    if (w != n) die("write failed");
}

/* One line, byte by byte (before STARTTLS nothing after it may be consumed). 0 at EOF/error. */
static int read_line(char *buf, int cap) {
    int n = 0;
    while (n < cap - 1) {
        char c;
        if (io_read(&c, 1) != 1) break;
        buf[n++] = c;
        if (c == '\n') break;
    }
    buf[n] = 0;
    return n;
}

static int read_reply(char *all, int cap) {
    char line[1024];
    all[0] = 0;
    for (;;) {
        if (!read_line(line, sizeof line)) return -1;
        fprintf(stderr, "%s %s", server_mode ? "C:" : "S:", line);
        strncat(all, line, (size_t)cap - strlen(all) - 1);
        if (strlen(line) < 4 || line[3] != '-') return atoi(line);
    }
}

static void expect(int want) {
    char all[4096];
    int code = read_reply(all, sizeof all);
    if (code != want) {
        char msg[4200];
        snprintf(msg, sizeof msg, "expected %d, got %d %s", want, code, all);
        die(msg);
    }
}

static WOLFSSL_CTX *context(void) {
    WOLFSSL_METHOD *m;
    int v13 = strcmp(version, "1.3") == 0, v12 = strcmp(version, "1.2") == 0;
    if (server_mode)
        m = v13 ? wolfTLSv1_3_server_method() : v12 ? wolfTLSv1_2_server_method() : wolfSSLv23_server_method();
    else
        m = v13 ? wolfTLSv1_3_client_method() : v12 ? wolfTLSv1_2_client_method() : wolfSSLv23_client_method();
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(m);
    if (!ctx) die("wolfSSL_CTX_new");
    if (wolfSSL_CTX_load_verify_locations(ctx, ca, NULL) != WOLFSSL_SUCCESS) die("cannot load the CA file");
    if (cert) {
        if (wolfSSL_CTX_use_certificate_chain_file(ctx, cert) != WOLFSSL_SUCCESS) die("cannot load the chain");
        if (wolfSSL_CTX_use_PrivateKey_file(ctx, key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
            die("cannot load the key");
    }
    if (server_mode) {
        if (!strcmp(client_auth, "none"))
            wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
        else if (!strcmp(client_auth, "ask"))
            wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
        else if (!strcmp(client_auth, "require"))
            wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        else
            die("--client-auth none|ask|require");
    } else {
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
    }
    return ctx;
}

static struct sockaddr_in addr_of(const char *ip, int p) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)p);
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) die("bad IPv4 address");
    return a;
}

static void describe(char *out, size_t cap) {
    snprintf(out, cap, "version %s cipher %s", wolfSSL_get_version(tls), wolfSSL_get_cipher(tls));
}

static void client(void) {
    WOLFSSL_CTX *ctx = context();
    sock = socket(AF_INET, SOCK_STREAM, 0);
    if (bind_addr) {
        struct sockaddr_in l = addr_of(bind_addr, 0);
        if (bind(sock, (struct sockaddr *)&l, sizeof l)) die("bind");
    }
    struct sockaddr_in r = addr_of(host, port);
    if (connect(sock, (struct sockaddr *)&r, sizeof r)) die("connect");
    char all[4096];
    expect(220);
    send_str("EHLO out.lab.test\r\n");
    if (read_reply(all, sizeof all) != 250) die("EHLO refused");
    if (!strcasestr(all, "STARTTLS")) die("server does not offer STARTTLS");
    send_str("STARTTLS\r\n");
    expect(220);

    WOLFSSL *s = wolfSSL_new(ctx);
    wolfSSL_set_fd(s, sock);
    wolfSSL_UseSNI(s, WOLFSSL_SNI_HOST_NAME, sni, (unsigned short)strlen(sni));
    wolfSSL_check_domain_name(s, sni);
    if (wolfSSL_connect(s) != WOLFSSL_SUCCESS) {
        char e[128];
        wolfSSL_ERR_error_string((unsigned long)wolfSSL_get_error(s, 0), e);
        char msg[200];
        snprintf(msg, sizeof msg, "TLS handshake: %s", e);
        die(msg);
    }
    tls = s;
    char d[200];
    describe(d, sizeof d);
    fprintf(stderr, "TLS established: %s\n", d);
    char body[512];
    snprintf(body, sizeof body, "Subject: ekuwatch test %s\r\n\r\nhello from %s\r\n.\r\n", name, name);
    struct { const char *cmd; int want; } steps[] = {
        {"EHLO out.lab.test\r\n", 250}, {"MAIL FROM:<sender@out.lab.test>\r\n", 250},
        {"RCPT TO:<root@lab.test>\r\n", 250}, {"DATA\r\n", 354}, {body, 250}, {"QUIT\r\n", 221},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        send_str(steps[i].cmd);
        /* a server that refused our certificate after its Finished answers with an alert */
        int code = read_reply(all, sizeof all);
        if (code < 0) die("connection closed while waiting for a reply");
        if (code != steps[i].want) {
            /* the server refused (Postfix req_ccert: 421 and close): say QUIT as swaks would */
            send_str("QUIT\r\n");
            char rest[4096];
            while (wolfSSL_read(tls, rest, sizeof rest) > 0) {}
            die("refused");
        }
    }
    wolfSSL_shutdown(tls); /* close_notify */
    char rest[4096];
    while (wolfSSL_read(tls, rest, sizeof rest) > 0) {}
}

static void server(void) {
    WOLFSSL_CTX *ctx = context();
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = addr_of(host, port);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1)) die("listen");
    fprintf(stderr, "listening on %s:%d (client auth: %s)\n", host, port, client_auth);
    sock = accept(ls, NULL, NULL);
    close(ls);
    if (sock < 0) die("accept");
    fprintf(stderr, "connection accepted\n");
    send_str("220 mx.lab.test ESMTP wolfssl-peer\r\n");
    char line[1024];
    for (;;) {
        if (!read_line(line, sizeof line)) die("client closed before STARTTLS");
        fprintf(stderr, "C: %s", line);
        if (!strncasecmp(line, "EHLO", 4))
            send_str("250-mx.lab.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 STARTTLS\r\n");
        else if (!strncasecmp(line, "STARTTLS", 8)) {
            send_str("220 2.0.0 Ready to start TLS\r\n");
            break;
        } else if (!strncasecmp(line, "QUIT", 4)) {
            send_str("221 2.0.0 Bye\r\n");
            die("client quit before STARTTLS");
        } else
            send_str("530 5.7.0 Must issue a STARTTLS command first\r\n");
    }
    WOLFSSL *s = wolfSSL_new(ctx);
    wolfSSL_set_fd(s, sock);
    if (wolfSSL_accept(s) != WOLFSSL_SUCCESS) {
        /* wolfSSL has already sent the alert for this error */
        char e[128];
        wolfSSL_ERR_error_string((unsigned long)wolfSSL_get_error(s, 0), e);
        fprintf(stderr, "TLS handshake failed: %s\n", e);
        die("TLS handshake failed");
    }
    tls = s;
    WOLFSSL_X509_CHAIN *chain = wolfSSL_get_peer_chain(tls);
    int n = chain ? wolfSSL_get_chain_count(chain) : 0;
    WOLFSSL_X509 *peer = wolfSSL_get_peer_certificate(tls);
    if (!peer) n = 0;
    char d[200];
    describe(d, sizeof d);
    fprintf(stderr, "TLS established: %s, client certificates: %d\n", d, n);
    int in_data = 0;
    while (read_line(line, sizeof line)) {
        fprintf(stderr, "C: %s", line);
        if (in_data) {
            if (!strcmp(line, ".\r\n") || !strcmp(line, ".\n")) {
                in_data = 0;
                send_str("250 2.0.0 Ok: queued\r\n");
            }
            continue;
        }
        if (!strncasecmp(line, "EHLO", 4))
            send_str("250-mx.lab.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
        else if (!strncasecmp(line, "HELO", 4) || !strncasecmp(line, "MAIL", 4) ||
                 !strncasecmp(line, "RCPT", 4) || !strncasecmp(line, "RSET", 4) ||
                 !strncasecmp(line, "NOOP", 4))
            send_str("250 2.1.0 Ok\r\n");
        else if (!strncasecmp(line, "DATA", 4)) {
            in_data = 1;
            send_str("354 End data with <CR><LF>.<CR><LF>\r\n");
        } else if (!strncasecmp(line, "QUIT", 4)) {
            send_str("221 2.0.0 Bye\r\n");
            break;
        } else
            send_str("502 5.5.2 Error: command not recognized\r\n");
    }
    fprintf(stderr, "client closed the connection\n");
    wolfSSL_shutdown(tls);
}

int main(int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "client") && strcmp(argv[1], "server"))) {
        fprintf(stderr, "usage: wolfssl-peer client|server --port N [--host 127.0.0.1] [--bind 127.0.0.2]\n"
                        "  [--tls 1.2|1.3|any] [--ca root.cert.pem] [--sni mx.lab.test] [--cert chain.pem --key key.pem]\n"
                        "  server: [--client-auth none|ask|require] (cert/key default server.chain.pem / server.key.pem)\n");
        return 2;
    }
    server_mode = !strcmp(argv[1], "server");
    name = getenv("NAME") ? getenv("NAME") : "wolfssl-peer";
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--port")) port = atoi(v);
        else if (!strcmp(k, "--host")) host = v;
        else if (!strcmp(k, "--bind")) bind_addr = v;
        else if (!strcmp(k, "--tls")) version = v;
        else if (!strcmp(k, "--ca")) ca = v;
        else if (!strcmp(k, "--sni")) sni = v;
        else if (!strcmp(k, "--cert")) cert = v;
        else if (!strcmp(k, "--key")) key = v;
        else if (!strcmp(k, "--client-auth")) client_auth = v;
        else if (!strcmp(k, "--name")) name = v;
        else { fprintf(stderr, "unknown argument %s\n", k); return 2; }
    }
    if (!port) { fprintf(stderr, "--port is required\n"); return 2; }
    if (server_mode && !cert) { cert = "server.chain.pem"; key = "server.key.pem"; }
    wolfSSL_Init();
    if (server_mode) server(); else client();
    return 0;
}
