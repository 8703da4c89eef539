//! Link against the runtime libraries by their sonames (`-l:libext2fs.so.2`), so that
//! building needs only the `libext2fs2` and `libcom-err2` packages every Debian/Ubuntu
//! system has (e2fsprogs depends on them), not their `-dev` packages with the
//! `libext2fs.so` symlink. The bindings are committed (src/sys.rs), so no headers either.

fn main() {
    println!("cargo:rustc-link-lib=dylib:+verbatim=libext2fs.so.2");
    println!("cargo:rustc-link-lib=dylib:+verbatim=libcom_err.so.2");
    println!("cargo:rerun-if-changed=build.rs");
}
