//! The ImageNet-1k class names, bundled: `weights/imagenet_classes.txt`, torchvision's list
//! (written by `weights/make_imagenet_classes.py`; BSD-3-Clause, see weights/README.md).

const NAMES: &str = include_str!("../../weights/imagenet_classes.txt");

/// The 1000 names in the order of torchvision's and timm's ImageNet classifier outputs.
pub fn imagenet_classes() -> Vec<String> {
    NAMES.lines().map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousand_distinct_names_in_torchvision_order() {
        let names = imagenet_classes();
        assert_eq!(names.len(), 1000);
        assert_eq!(names[0], "tench");
        assert_eq!(names[281], "tabby");
        assert_eq!(names[999], "toilet tissue");
        let distinct: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), 1000);
        assert!(names.iter().all(|n| !n.is_empty() && n.trim() == n));
    }
}
