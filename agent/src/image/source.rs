//! What an import source names: one [`SourceImage`] per reference, with the top-level
//! descriptor it points at. Pure data, shared by the layout reader (`layout.rs`) and the
//! docker-archive converter (`archive.rs`), so neither depends on the other for it.

use oci_spec::image::Descriptor;

/// One reference to import and the descriptor it names in the source.
#[derive(Debug, Clone)]
pub(crate) struct SourceImage {
    /// Normalised reference.
    pub reference: String,
    pub descriptor: Descriptor,
}
