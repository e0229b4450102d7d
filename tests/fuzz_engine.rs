//! The fuzzer itself (`tests/fuzz/`): its mutations are reproducible and bounded, and a
//! panicking target is reported with its seed and input.

mod fuzz;

use std::panic::catch_unwind;

use fuzz::{Rng, fuzz, mutate};

#[test]
fn mutations_are_a_function_of_the_seed_and_stay_bounded() {
    let corpus = vec![b"{\"a\": 12, \"b\": [1, 2]}".to_vec(), vec![0u8; 32]];
    let edits = |seed| {
        let mut rng = Rng::new(seed);
        let mut data = corpus[0].clone();
        for _ in 0..200 {
            mutate(&mut rng, &mut data, &corpus);
        }
        data
    };
    assert_eq!(edits(7), edits(7));
    assert_ne!(edits(7), edits(8));
    assert!(edits(9).len() <= fuzz::MAX_LEN);
}

#[test]
fn a_panicking_target_is_reported_with_its_input() {
    let corpus = vec![b"ok".to_vec()];
    let result = catch_unwind(|| {
        fuzz("self-test", 1, &corpus, |input| {
            assert!(input.len() < 3, "too long");
        })
    });
    let message = result.expect_err("a mutation makes the input longer");
    let text = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        text.contains("self-test") && text.contains("seed 0x1"),
        "{text}"
    );
}
