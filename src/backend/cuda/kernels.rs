//! The PTX that build.rs compiled from `kernels/*.cu`, embedded in the binary.

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

/// The PTX of kernel file `stem`, if this binary has kernels.
pub fn ptx(stem: &str) -> Option<&'static str> {
    PTX.iter().find(|(s, _)| *s == stem).map(|(_, p)| *p)
}

/// The kernel entry points of a PTX text: the names after `.entry`.
pub fn entries(ptx: &str) -> Vec<&str> {
    ptx.lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix(".visible .entry ")?;
            Some(rest.split('(').next()?.trim())
        })
        .collect()
}
