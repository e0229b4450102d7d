//! Runs split over many processes (README "Clusters (Slurm)"): [`Shard`] picks each process's part
//! of the inputs, the shards write records of their own into one shared output folder, and
//! [`merge`] turns those records into what one process would have written.

pub mod merge;
pub mod shard;

pub use shard::Shard;

/// The name of a record file of `shard`: `per_image.jsonl` for a whole run, `per_image.2-of-3.jsonl`
/// for part 2 of 3, so shards never write the same file.
pub fn shard_file(stem: &str, extension: &str, shard: Shard) -> String {
    if shard.is_whole() {
        format!("{stem}.{extension}")
    } else {
        format!("{stem}.{}.{extension}", shard.file_tag())
    }
}

/// The shard a file named by [`shard_file`] belongs to, when it is a shard's.
pub fn shard_of_file(name: &str, stem: &str, extension: &str) -> Option<Shard> {
    let tag = name
        .strip_prefix(stem)?
        .strip_prefix('.')?
        .strip_suffix(extension)?
        .strip_suffix('.')?;
    Shard::from_file_tag(tag)
}
