fn main() -> std::process::ExitCode {
    ekuwatch::cli::main()
}
