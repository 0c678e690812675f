//! The index: what routes a query to the few posting lists worth reading.
//!
//! - [`centroids`]: the centroid table, with a second routing level above a thousand
//!   centroids;
//! - [`kmeans`]: balanced k-means for the first clustering and for splits;
//! - [`quantizer`]: 8-bit scalar quantization of the vectors in posting lists;
//! - [`distance`]: the distance kernels (AVX2 where the CPU has it);
//! - `posting`: which lists a vector goes to, and a list's entries.

pub mod centroids;
pub mod distance;
pub mod kmeans;
pub(crate) mod posting;
pub mod quantizer;
