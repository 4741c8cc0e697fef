//! UniFFI's binding generator, built from this crate so its version always matches
//! the `uniffi` the library was built with. Used by `scripts/generate-bindings.sh`:
//!
//! ```text
//! cargo run --features bindgen-cli --bin uniffi-bindgen -- generate \
//!     --library target/debug/libtokenkeeper.so --language kotlin --out-dir …
//! ```

fn main() {
    uniffi::uniffi_bindgen_main()
}
