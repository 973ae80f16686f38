//! Bad settings give one clear error naming the key; good ones land where they should.

use ptm_train::TrainingArguments;

fn resolve(sets: &[&str]) -> Result<TrainingArguments, String> {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    TrainingArguments::resolve(&TrainingArguments::default(), None, &sets)
        .map_err(|e| e.to_string())
}

#[test]
fn unknown_key_is_named_with_a_suggestion() {
    let e = resolve(&["learning_rat=1e-3"]).unwrap_err();
    assert!(
        e.contains("learning_rat") && e.contains("unknown setting"),
        "{e}"
    );
    let e = resolve(&["lr_scheduler=cosine"]).unwrap_err();
    assert!(
        e.contains("did you mean") && e.contains("lr_scheduler_type"),
        "{e}"
    );
}

#[test]
fn out_of_range_values_are_named() {
    let e = resolve(&["learning_rate=-1"]).unwrap_err();
    assert!(e.contains("learning_rate") && e.contains("-1"), "{e}");
    let e = resolve(&["adam_beta2=1.5"]).unwrap_err();
    assert!(e.contains("adam_beta2"), "{e}");
    let e = resolve(&["per_device_train_batch_size=0"]).unwrap_err();
    assert!(e.contains("per_device_train_batch_size"), "{e}");
    let e = resolve(&["lr_scheduler_type=triangle"]).unwrap_err();
    assert!(e.contains("triangle"), "{e}");
    let e = resolve(&["max_steps"]).unwrap_err();
    assert!(e.contains("key=value"), "{e}");
}

#[test]
fn file_then_command_line_overrides() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let toml = dir.join("settings-test.toml");
    std::fs::write(
        &toml,
        "learning_rate = 0.01\nmax_steps = 7\nlr_scheduler_type = \"cosine\"\n",
    )
    .unwrap();
    let sets = vec!["max_steps=9".to_string(), "output_dir=runs/x".to_string()];
    let a = TrainingArguments::resolve(&TrainingArguments::default(), Some(&toml), &sets).unwrap();
    assert_eq!((a.learning_rate, a.max_steps), (0.01, 9));
    assert_eq!(a.output_dir, std::path::PathBuf::from("runs/x"));
    assert_eq!(a.lr_scheduler_type, ptm_train::args::SchedulerType::Cosine);
    std::fs::write(&toml, "learning_rate = 0.01\nwarmup = 3\n").unwrap();
    let e = TrainingArguments::resolve(&TrainingArguments::default(), Some(&toml), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("warmup") && e.contains("unknown setting"), "{e}");
}

#[test]
fn missing_data_path_is_named() {
    let e = ptm_train::data::read_texts(std::path::Path::new("/no/such/corpus.txt"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/no/such/corpus.txt") && e.contains("does not exist"),
        "{e}"
    );
}

#[test]
fn schedules_follow_transformers() {
    use ptm_train::args::SchedulerType::*;
    use ptm_train::schedule::learning_rate as lr;
    // Warm-up rises linearly from 0; linear decays to 0 at the last step; cosine is half a cosine.
    assert_eq!(lr(Linear, 1.0, 0, 4, 10), 0.0);
    assert_eq!(lr(Linear, 1.0, 2, 4, 10), 0.5);
    assert_eq!(lr(Linear, 1.0, 4, 4, 10), 1.0);
    assert!((lr(Linear, 1.0, 7, 4, 10) - 0.5).abs() < 1e-12);
    assert!((lr(Cosine, 1.0, 7, 4, 10) - 0.5).abs() < 1e-12);
    assert!(
        (lr(Cosine, 1.0, 5, 4, 10) - 0.5 * (1.0 + (std::f64::consts::PI / 6.0).cos())).abs()
            < 1e-12
    );
    assert_eq!(lr(Constant, 2.0, 9, 4, 10), 2.0);
}
