fn main() {
    std::process::exit(millrace::cli::main());
}
