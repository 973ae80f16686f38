//! Writes the PTX of one kernel file for one architecture to stdout, for reading it or feeding it
//! to `ptxas -v` by hand: `cargo run -p ptm-cuda --example dump_ptx -- attention_mma.cu compute_80`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(file) = args.get(1) else {
        eprintln!("usage: dump_ptx FILE.cu [compute_80]");
        std::process::exit(2);
    };
    let arch = args.get(2).map_or("compute_80", |s| s.as_str());
    let Some(src) = ptm_cuda::sources::source(file) else {
        eprintln!("no kernel file {file} in kernels/");
        std::process::exit(2);
    };
    match ptm_cuda::compile::compile_uncached(src, arch) {
        Ok(c) => print!("{}", c.ptx),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
