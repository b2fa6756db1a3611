//! Links the `bootstrap` executable at a fixed address rather than position-independent.
//!
//! A position-independent executable carries one dynamic relocation for every pointer in its
//! read-only data (vtables, static tables, string slices): 0.8 MB of `.rela.dyn` that the
//! loader reads in full at each start, and 0.4 MB of `.data.rel.ro` that it writes into (so
//! every page of it becomes a private copy). Both counted in the runtime's resident memory for
//! the life of the sandbox, for the address randomisation of one binary; the handler library,
//! heap and stacks stay randomised. Measured in `docs/size.md`.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bin=bootstrap=-no-pie");
    }
}
