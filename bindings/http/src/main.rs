//! The `memsilo` command (`memsilo serve --data DIR --listen ADDR`).

/// mimalloc instead of the C library's allocator: the write and recall paths allocate many
/// small blocks, and glibc's malloc/free were 12-15% of their instructions (README, issue #16).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let code = memsilo_http::run_cli(std::env::args().skip(1).collect());
    std::process::exit(code);
}
