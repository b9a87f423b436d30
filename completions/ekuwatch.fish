# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_ekuwatch_global_optspecs
    string join \n log-format= h/help V/version
end

function __fish_ekuwatch_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_ekuwatch_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_ekuwatch_using_subcommand
    set -l cmd (__fish_ekuwatch_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c ekuwatch -n "__fish_ekuwatch_needs_command" -l log-format -d 'Log lines on standard error: text, or one JSON object per line for log collectors. The level comes from EKUWATCH_LOG (default warn; e.g. info, debug, ekuwatch=trace)' -r -f -a "text\t'Human-readable lines (coloured on a terminal unless NO_COLOR is set)'
json\t'One JSON object per line: timestamp, level, fields (message and values), target'"
complete -c ekuwatch -n "__fish_ekuwatch_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ekuwatch -n "__fish_ekuwatch_needs_command" -s V -l version -d 'Print version'
complete -c ekuwatch -n "__fish_ekuwatch_needs_command" -f -a "analyze" -d 'Analyze pcap/pcapng files or directories of them'
complete -c ekuwatch -n "__fish_ekuwatch_needs_command" -f -a "report" -d 'Per-peer report from session events (JSON Lines from `analyze --events` or `live --events`, plain or gzip, of one observer or many): the same report and verdicts as `analyze`'
complete -c ekuwatch -n "__fish_ekuwatch_needs_command" -f -a "check-config" -d 'Check a configuration file (unknown keys are errors) and exit'
complete -c ekuwatch -n "__fish_ekuwatch_needs_command" -f -a "live" -d 'Capture live on an interface (libpcap) and export metrics (build with `--features live`)'
complete -c ekuwatch -n "__fish_ekuwatch_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand analyze" -l events -d 'Write one JSON object per connection to FILE ("-" for standard output)' -r -F
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand analyze" -l keylog -d 'TLS key log (NSS format, e.g. SSLKEYLOGFILE) to decrypt TLS 1.3 handshakes and the SMTP replies after STARTTLS (repeatable). A directory: every file in it (not recursive; pcap/pcapng files skipped). Secrets are never printed' -r -F
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand analyze" -l local-net -d 'CIDR of our own hosts (repeatable): sets each session\'s direction (outbound/inbound)' -r
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand analyze" -l report -d 'Per-peer report on standard output (default: text; none when --events is "-")' -r -f -a "text\t''
json\t''
markdown\t''
html\t''
csv\t''
none\t''"
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand analyze" -l port -d 'Extra SMTP server ports (25, 465, 587 are always SMTP); used to call implicit TLS SMTP' -r
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand analyze" -l config -d 'Configuration file (TOML; flags extend or override it)' -r -F
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand analyze" -l openmetrics -d 'Write the metrics as timestamped OpenMetrics (one snapshot per minute of packet time) for `promtool tsdb create-blocks-from openmetrics FILE DATA_DIR`' -r -F
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand analyze" -l observer -d 'Name of this observer, written into every event\'s `observer` (default: the host name, or `observer` in the configuration file)' -r
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand analyze" -l top-peers -d 'Peers that get their own `peer` label in metrics (besides the watch-list; default 100)' -r
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand analyze" -l watch -d 'Registered domains that always get their own `peer` label (repeatable)' -r
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand analyze" -l log-format -d 'Log lines on standard error: text, or one JSON object per line for log collectors. The level comes from EKUWATCH_LOG (default warn; e.g. info, debug, ekuwatch=trace)' -r -f -a "text\t'Human-readable lines (coloured on a terminal unless NO_COLOR is set)'
json\t'One JSON object per line: timestamp, level, fields (message and values), target'"
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand analyze" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand report" -l report -d 'Per-peer report format on standard output' -r -f -a "text\t''
json\t''
markdown\t''
html\t''
csv\t''
none\t''"
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand report" -l log-format -d 'Log lines on standard error: text, or one JSON object per line for log collectors. The level comes from EKUWATCH_LOG (default warn; e.g. info, debug, ekuwatch=trace)' -r -f -a "text\t'Human-readable lines (coloured on a terminal unless NO_COLOR is set)'
json\t'One JSON object per line: timestamp, level, fields (message and values), target'"
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand report" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand check-config" -l log-format -d 'Log lines on standard error: text, or one JSON object per line for log collectors. The level comes from EKUWATCH_LOG (default warn; e.g. info, debug, ekuwatch=trace)' -r -f -a "text\t'Human-readable lines (coloured on a terminal unless NO_COLOR is set)'
json\t'One JSON object per line: timestamp, level, fields (message and values), target'"
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand check-config" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand live" -l config -d 'Configuration file (TOML; flags extend or override it)' -r -F
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand live" -l interface -d 'Interface to capture on (or `interface` in the configuration file)' -r
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand live" -l backend -d 'Capture backend: pcap (libpcap copies every packet of the SMTP ports) or ebpf (a kernel program forwards each connection\'s packets only until its handshake outcome is known; build with `--features ebpf`)' -r -f -a "pcap\t''
ebpf\t''"
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand live" -l ebpf-budget -d 'eBPF: payload bytes per connection and direction the kernel forwards at most (a backstop for connections whose outcome never becomes known)' -r
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand live" -l ebpf-ring-mib -d 'eBPF: size of the ring buffer to user space, in MiB (a power of two)' -r
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand live" -l filter -d 'BPF capture filter (default: TCP on ports 25, 465, 587 and every --port)' -r
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand live" -l port -d 'Extra SMTP ports to watch (repeatable)' -r
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand live" -l listen -d 'Address of the exporter (/metrics, /peers, /healthz; default 127.0.0.1:9967)' -r
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand live" -l local-net -d 'Our own hosts (default: the interface\'s addresses)' -r
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand live" -l events -d 'Write events as JSON Lines, flushed per connection ("-" for standard output)' -r -F
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand live" -l top-peers -d 'Peers that get their own `peer` label in metrics (besides the watch-list; default 100)' -r
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand live" -l watch -d 'Registered domains that always get their own `peer` label (repeatable)' -r
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand live" -l user -d 'User to switch to once the capture and the exporter socket are open (when started as root; default `nobody`). `-` keeps the current user' -r
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand live" -l observer -d 'Name of this observer, written into every event\'s `observer` (default: the host name, or `observer` in the configuration file)' -r
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand live" -l linger -d 'Seconds the final counters stay served after SIGINT/SIGTERM' -r
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand live" -l log-format -d 'Log lines on standard error: text, or one JSON object per line for log collectors. The level comes from EKUWATCH_LOG (default warn; e.g. info, debug, ekuwatch=trace)' -r -f -a "text\t'Human-readable lines (coloured on a terminal unless NO_COLOR is set)'
json\t'One JSON object per line: timestamp, level, fields (message and values), target'"
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand live" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand help; and not __fish_seen_subcommand_from analyze report check-config live help" -f -a "analyze" -d 'Analyze pcap/pcapng files or directories of them'
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand help; and not __fish_seen_subcommand_from analyze report check-config live help" -f -a "report" -d 'Per-peer report from session events (JSON Lines from `analyze --events` or `live --events`, plain or gzip, of one observer or many): the same report and verdicts as `analyze`'
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand help; and not __fish_seen_subcommand_from analyze report check-config live help" -f -a "check-config" -d 'Check a configuration file (unknown keys are errors) and exit'
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand help; and not __fish_seen_subcommand_from analyze report check-config live help" -f -a "live" -d 'Capture live on an interface (libpcap) and export metrics (build with `--features live`)'
complete -c ekuwatch -n "__fish_ekuwatch_using_subcommand help; and not __fish_seen_subcommand_from analyze report check-config live help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
