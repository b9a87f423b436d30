/// mimalloc instead of glibc's allocator: a handshake allocates many small, short-lived values
/// (facts, event strings), and glibc's malloc/free were ~20 % of the time on handshake-heavy
/// traffic (docs/performance.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ekuwatch::cli::main()
}
