//! One module per command; each composes `subroot_formats` and the shared services in
//! [`crate::open`] (finding the image and filesystem to work on) and [`crate::edit`] (changing
//! an image and delivering the result) into an operation.

pub mod batch;
pub mod cat;
pub mod convert;
pub mod copy_in;
pub mod create;
pub mod customize;
pub mod export;
pub mod extract;
pub mod info;
pub mod initrd;
pub mod inspect;
pub mod ls;
pub mod manifest;
pub mod mkfs;
pub mod recover;
pub mod relayout;
pub mod resize;
pub mod rm;
pub mod roots;
