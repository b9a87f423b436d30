/* Bare libpcap read loop: the physical limit for reading a capture (no decoding).
 * Build: gcc -O2 -o readloop readloop.c -lpcap      Usage: readloop FILE */
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdint.h>

int main(int argc, char **argv) {
    char err[PCAP_ERRBUF_SIZE];
    if (argc != 2) { fprintf(stderr, "usage: %s FILE\n", argv[0]); return 2; }
    pcap_t *p = pcap_open_offline(argv[1], err);
    if (!p) { fprintf(stderr, "%s\n", err); return 1; }
    struct pcap_pkthdr *h;
    const u_char *d;
    uint64_t n = 0, bytes = 0, sum = 0;
    int rc;
    while ((rc = pcap_next_ex(p, &h, &d)) == 1) {
        n++;
        bytes += h->caplen;
        if (h->caplen > 0) sum += d[h->caplen - 1]; /* touch the packet */
    }
    if (rc == PCAP_ERROR) { fprintf(stderr, "%s\n", pcap_geterr(p)); return 1; }
    printf("%llu packets %llu bytes %llu\n", (unsigned long long)n, (unsigned long long)bytes,
           (unsigned long long)sum);
    pcap_close(p);
    return 0;
}
