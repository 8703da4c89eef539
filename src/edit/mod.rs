//! Changing an image and delivering the result: which engine rewrites an ext filesystem
//! ([`engine`]), the in-process ext editor session
//! ([`ext_edit`]), the rebuild source ([`edited_tree`]), FAT edits ([`edit_fat`]), the checks
//! after an edit ([`full_check`]), and where the result goes ([`deliver`]: a new image, a
//! qcow2 overlay, or the input in place), written through [`write_image`] with the
//! [`output_options`] asked for.

pub mod deliver;
pub mod edit_fat;
pub mod edited_tree;
pub mod engine;
pub mod ext_edit;
pub mod full_check;
pub mod output_options;
pub mod write_image;
