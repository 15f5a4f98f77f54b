//! Container images: the API and web images built from this workspace, and stand-in PostgreSQL
//! and Redis images for machines that cannot pull from a registry.

pub(crate) mod build;
