//! Adapter behaviour beyond parity: merging, saving in PEFT's exact format, several adapters on
//! one base, target matching, bad input, bottleneck adapters, training only the adapter.

use ptm_models::gpt2::{Gpt2Checkpoint, Gpt2Inputs, Gpt2LmHeadModel};
use ptm_nn::optim::{AdamW, AdamWConfig, Optimizer};
use ptm_peft::{
    BottleneckConfig, Ia3Config, LoraConfig, PeftConfig, PeftKind, PeftModel, Placement,
    PrefixTuningConfig, Targets,
};
use ptm_tensor::{DType, Tensor};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn expected(name: &str) -> BTreeMap<String, Tensor> {
    ptm_tensor::safetensors::load(fixture(name).join("expected.safetensors")).unwrap()
}

fn rel_err(got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.dims(), want.dims());
    let (g, w) = (got.to_f64_vec().unwrap(), want.to_f64_vec().unwrap());
    let scale = w.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let diff = g
        .iter()
        .zip(&w)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    diff / scale.max(f64::MIN_POSITIVE)
}

type Gpt2Peft = PeftModel<Gpt2LmHeadModel>;

fn base() -> Gpt2Peft {
    Gpt2Peft::from_pretrained(fixture("gpt2"), DType::F32).unwrap()
}

fn logits(m: &Gpt2Peft) -> Tensor {
    let exp = expected("gpt2");
    let inputs = Gpt2Inputs {
        attention_mask: Some(&exp["attention_mask"]),
        ..Default::default()
    };
    m.model().forward(&exp["input_ids"], inputs).unwrap().0
}

fn lora(targets: Targets) -> LoraConfig {
    LoraConfig {
        r: 2,
        lora_alpha: 4.0,
        target_modules: Some(targets),
        init_lora_weights: false,
        ..Default::default()
    }
}

fn peft(kind: PeftKind) -> PeftConfig {
    PeftConfig::new(kind, Some("CAUSAL_LM"))
}

#[test]
fn merge_and_unmerge_keep_the_outputs() {
    for adapter in ["peft/gpt2-lora", "peft/gpt2-ia3"] {
        let mut m = base();
        let w0 = m
            .base()
            .params
            .get("transformer.h.0.attn.c_attn.weight")
            .unwrap()
            .tensor();
        m.load_adapter(fixture(adapter), "default").unwrap();
        let unmerged = logits(&m);
        m.merge_adapter().unwrap();
        let merged = logits(&m);
        let e = rel_err(&merged, &unmerged);
        eprintln!("{adapter}: merged vs unmerged {e:.2e}");
        assert!(e < 1e-5, "{adapter}: merged differs by {e:e}");
        m.unmerge_adapter().unwrap();
        let w1 = m
            .base()
            .params
            .get("transformer.h.0.attn.c_attn.weight")
            .unwrap()
            .tensor();
        assert!(
            rel_err(&w1, &w0) < 1e-6,
            "{adapter}: base weight not restored"
        );
        assert!(rel_err(&logits(&m), &unmerged) < 1e-6);
    }
}

#[test]
fn merge_and_unload_saves_a_plain_model() {
    let mut m = base();
    m.load_adapter(fixture("peft/gpt2-lora"), "default")
        .unwrap();
    let want = logits(&m);
    let plain = m.merge_and_unload().unwrap();
    let dir = scratch("merged-gpt2");
    plain.save_pretrained(&dir).unwrap();
    let names = ptm_tensor::safetensors::load(dir.join("model.safetensors")).unwrap();
    let base_names =
        ptm_tensor::safetensors::load(fixture("gpt2").join("model.safetensors")).unwrap();
    assert_eq!(
        names.keys().collect::<Vec<_>>(),
        base_names.keys().collect::<Vec<_>>(),
        "a merged model has the base model's tensors only"
    );
    let reloaded =
        Gpt2Checkpoint::<Gpt2LmHeadModel>::from_pretrained(&dir, DType::F32, None).unwrap();
    let exp = expected("gpt2");
    let inputs = Gpt2Inputs {
        attention_mask: Some(&exp["attention_mask"]),
        ..Default::default()
    };
    let got = reloaded.model.forward(&exp["input_ids"], inputs).unwrap().0;
    let e = rel_err(&got, &want);
    eprintln!("merged and reloaded vs adapter: {e:.2e}");
    assert!(e < 1e-5);
}

/// An adapter ptm saves has exactly the tensor names and config keys peft wrote, the same values,
/// and loads back to the same outputs.
#[test]
fn saved_adapters_have_peft_names_and_keys() {
    let cases: [(&str, &str); 5] = [
        ("gpt2", "peft/gpt2-lora"),
        ("gpt2", "peft/gpt2-ia3"),
        ("gpt2", "peft/gpt2-prefix"),
        ("bert-seqcls", "peft/bert-lora"),
        ("vit-cls", "peft/vit-lora"),
    ];
    for (base_dir, adapter) in cases {
        let out = scratch(&format!("resaved-{}", adapter.replace('/', "-")));
        match base_dir {
            "gpt2" => {
                let mut m = base();
                m.load_adapter(fixture(adapter), "default").unwrap();
                m.save_adapter(&out, "default").unwrap();
                let mut again = base();
                again.load_adapter(&out, "default").unwrap();
                assert!(rel_err(&logits(&again), &logits(&m)) < 1e-7, "{adapter}");
            }
            "bert-seqcls" => {
                let mut m =
                    PeftModel::<ptm_models::bert::BertForSequenceClassification>::from_pretrained(
                        fixture(base_dir),
                        DType::F32,
                    )
                    .unwrap();
                m.load_adapter(fixture(adapter), "default").unwrap();
                m.save_adapter(&out, "default").unwrap();
            }
            _ => {
                let mut m =
                    PeftModel::<ptm_models::vit::VitForImageClassification>::from_pretrained(
                        fixture(base_dir),
                        DType::F32,
                    )
                    .unwrap();
                m.load_adapter(fixture(adapter), "default").unwrap();
                m.save_adapter(&out, "default").unwrap();
            }
        }
        let theirs =
            ptm_tensor::safetensors::load(fixture(adapter).join("adapter_model.safetensors"))
                .unwrap();
        let ours = ptm_tensor::safetensors::load(out.join("adapter_model.safetensors")).unwrap();
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{adapter}: tensor names"
        );
        for (k, t) in &theirs {
            assert_eq!(
                ours[k].to_f64_vec().unwrap(),
                t.to_f64_vec().unwrap(),
                "{adapter}: {k}"
            );
        }
        let read = |p: PathBuf| -> serde_json::Map<String, serde_json::Value> {
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
        };
        let (a, b) = (
            read(fixture(adapter).join("adapter_config.json")),
            read(out.join("adapter_config.json")),
        );
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "{adapter}: config keys"
        );
        for (k, v) in &a {
            let same = match (v, &b[k]) {
                // PEFT writes target lists from a set: any order.
                (serde_json::Value::Array(x), serde_json::Value::Array(y)) => {
                    let mut x: Vec<String> = x.iter().map(|s| s.to_string()).collect();
                    let mut y: Vec<String> = y.iter().map(|s| s.to_string()).collect();
                    x.sort();
                    y.sort();
                    x == y
                }
                (x, y) => x == y,
            };
            assert!(
                same,
                "{adapter}: {k} = {v} in peft's file, {} in ptm's",
                b[k]
            );
        }
    }
}

#[test]
fn adapters_switch_by_name_without_reloading() {
    let mut m = base();
    let plain = logits(&m);
    assert!(rel_err(&plain, &expected("gpt2")["logits"]) < 1e-4);
    m.load_adapter(fixture("peft/gpt2-ia3"), "ia3").unwrap();
    m.load_adapter(fixture("peft/gpt2-prefix"), "prefix")
        .unwrap();
    // Loaded last: its biases (bias = "lora_only") are the base model's own, shared by every
    // adapter as in PEFT.
    m.load_adapter(fixture("peft/gpt2-lora"), "lora").unwrap();
    let check = |m: &mut Gpt2Peft, name: &str, dir: &str| {
        m.set_adapter(Some(name)).unwrap();
        let e = rel_err(&logits(m), &expected(dir)["logits"]);
        assert!(e < 1e-4, "{name}: {e:e}");
        // Only the active adapter trains.
        for (store, _) in m.saved_tensors(name).unwrap() {
            assert!(
                m.base().params.get(&store).unwrap().is_trainable(),
                "{store}"
            );
        }
        for other in m.adapter_names().iter().filter(|o| *o != name) {
            for (store, _) in m.saved_tensors(other).unwrap() {
                assert!(
                    !m.base().params.get(&store).unwrap().is_trainable(),
                    "{store}"
                );
            }
        }
    };
    check(&mut m, "lora", "peft/gpt2-lora");
    m.delete_adapter("lora").unwrap();
    assert!(m
        .base()
        .params
        .all()
        .iter()
        .all(|(n, _)| !n.contains(".lora")));
    assert!(m.set_adapter(Some("lora")).is_err());
    let mut m = base();
    m.load_adapter(fixture("peft/gpt2-ia3"), "ia3").unwrap();
    m.load_adapter(fixture("peft/gpt2-prefix"), "prefix")
        .unwrap();
    for (name, dir) in [
        ("ia3", "peft/gpt2-ia3"),
        ("prefix", "peft/gpt2-prefix"),
        ("ia3", "peft/gpt2-ia3"),
    ] {
        check(&mut m, name, dir);
    }
    m.set_adapter(None).unwrap();
    assert_eq!(
        logits(&m).to_f64_vec().unwrap(),
        plain.to_f64_vec().unwrap()
    );
}

#[test]
fn targets_match_as_peft_matches_them() {
    let wrapped = |t: Targets, extra: fn(&mut LoraConfig)| -> Vec<String> {
        let mut m = base();
        let mut c = lora(t);
        extra(&mut c);
        m.add_adapter("a", peft(PeftKind::Lora(c)), 0).unwrap();
        m.saved_tensors("a")
            .unwrap()
            .into_iter()
            .filter(|(s, _)| s.contains("lora_A"))
            .map(|(s, _)| s.replace(".lora_A.a.weight", ""))
            .collect()
    };
    assert_eq!(wrapped(Targets::names(&["c_proj"]), |_| {}).len(), 4);
    assert_eq!(wrapped(Targets::names(&["mlp.c_proj"]), |_| {}).len(), 2);
    assert_eq!(
        wrapped(Targets::Regex(r".*\.1\.attn\.c_attn".into()), |_| {}),
        vec!["transformer.h.1.attn.c_attn"]
    );
    assert_eq!(wrapped(Targets::AllLinear, |_| {}).len(), 8);
    assert_eq!(
        wrapped(Targets::AllLinear, |c| {
            c.exclude_modules = Some(Targets::names(&["c_fc", "c_proj"]))
        })
        .len(),
        2
    );
    assert_eq!(
        wrapped(Targets::names(&["c_attn"]), |c| c.layers_to_transform =
            Some(vec![0])),
        vec!["transformer.h.0.attn.c_attn"]
    );
}

#[test]
fn bad_configs_and_files_are_named_errors() {
    let mut m = base();
    let e = m
        .add_adapter(
            "a",
            peft(PeftKind::Lora(lora(Targets::names(&["c_attn", "query"])))),
            0,
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"query\"") && e.contains("attn.c_attn") && e.contains("mlp.c_fc"),
        "{e}"
    );

    let dir = scratch("bad-config");
    let write = |json: &str| std::fs::write(dir.join("adapter_config.json"), json).unwrap();
    write(r#"{"peft_type": "LORA", "r": 4, "target_modules": ["c_attn"], "use_dora": true}"#);
    let e = m.load_adapter(&dir, "b").unwrap_err().to_string();
    assert!(
        e.contains("use_dora") && e.contains("adapter_config.json"),
        "{e}"
    );
    write(r#"{"peft_type": "LOHA"}"#);
    let e = m.load_adapter(&dir, "b").unwrap_err().to_string();
    assert!(e.contains("LOHA"), "{e}");
    write(r#"{"peft_type": "LORA", "r": 0}"#);
    let e = m.load_adapter(&dir, "b").unwrap_err().to_string();
    assert!(e.contains("r must be positive"), "{e}");

    // A rank-4 adapter file with a rank-8 config: the shape error names the tensor.
    let cfg = std::fs::read_to_string(fixture("peft/gpt2-lora/adapter_config.json")).unwrap();
    write(&cfg.replace("\"r\": 4", "\"r\": 8"));
    std::fs::copy(
        fixture("peft/gpt2-lora/adapter_model.safetensors"),
        dir.join("adapter_model.safetensors"),
    )
    .unwrap();
    let e = m.load_adapter(&dir, "b").unwrap_err().to_string();
    assert!(e.contains("lora_A.weight") && e.contains("[4, 48]"), "{e}");

    // Tensors the config does not account for are an error, not silently dropped.
    write(
        &cfg.replace("\"c_proj\",", "")
            .replace(",\n    \"c_proj\"", ""),
    );
    let e = m.load_adapter(&dir, "b").unwrap_err().to_string();
    assert!(e.contains("match no module") && e.contains("c_proj"), "{e}");

    // A BERT adapter on GPT-2.
    let e = m
        .load_adapter(fixture("peft/bert-lora"), "b")
        .unwrap_err()
        .to_string();
    assert!(e.contains("query"), "{e}");
    assert!(
        m.adapter_names().is_empty(),
        "failed loads leave no adapter behind"
    );
    let e = m
        .load_adapter(scratch("empty-adapter"), "b")
        .unwrap_err()
        .to_string();
    assert!(e.contains("adapter_config.json"), "{e}");
    // Failed loads leave no parameters and no changed biases behind: the same name loads cleanly.
    assert_eq!(
        m.base().params.all().len(),
        base().base().params.all().len()
    );
    m.load_adapter(fixture("peft/gpt2-lora"), "b").unwrap();
    let e = rel_err(&logits(&m), &expected("peft/gpt2-lora")["logits"]);
    assert!(e < 1e-4, "{e:e}");
}

#[test]
fn bottleneck_adapters_start_as_identity_and_round_trip() {
    for (placement, slots) in [(Placement::Houlsby, 4), (Placement::Pfeiffer, 2)] {
        let mut m = base();
        let plain = logits(&m);
        let cfg = BottleneckConfig {
            placement,
            reduction_factor: 4,
            ..Default::default()
        };
        m.add_adapter("b", peft(PeftKind::Bottleneck(cfg)), 3)
            .unwrap();
        assert_eq!(
            logits(&m).to_f64_vec().unwrap(),
            plain.to_f64_vec().unwrap()
        );
        // Per slot: down [12, 48] + 12, up [48, 12] + 48.
        let per_slot = 2 * 12 * 48 + 12 + 48;
        assert_eq!(
            m.param_counts().trainable,
            slots * per_slot,
            "{placement:?}"
        );
        // Perturb, save, reload: same outputs.
        for (store, _) in m.saved_tensors("b").unwrap() {
            let p = m.base().params.get(&store).unwrap();
            let t = p.tensor();
            let noise = Tensor::rand(
                -0.1,
                0.1,
                t.dims(),
                DType::F32,
                &mut ptm_tensor::Rng::new(5),
                &ptm_tensor::Device::Cpu,
            )
            .unwrap();
            p.set(t.add(&noise).unwrap()).unwrap();
        }
        let adapted = logits(&m);
        assert!(
            rel_err(&adapted, &plain) > 1e-3,
            "the adapter changes the outputs"
        );
        let dir = scratch(&format!("bottleneck-{placement:?}"));
        m.save_adapter(&dir, "b").unwrap();
        let mut again = base();
        again.load_adapter(&dir, "b").unwrap();
        assert_eq!(
            logits(&again).to_f64_vec().unwrap(),
            adapted.to_f64_vec().unwrap()
        );
    }
}

/// A few AdamW steps on the adapter lower the loss and leave every base weight untouched.
#[test]
fn training_changes_only_the_adapter() {
    let exp = expected("gpt2");
    let kinds = [
        PeftKind::Lora(lora(Targets::names(&["c_attn", "c_fc"]))),
        PeftKind::Ia3(Ia3Config::default()),
        PeftKind::PrefixTuning(PrefixTuningConfig {
            num_virtual_tokens: 3,
            prefix_projection: true,
            encoder_hidden_size: Some(16),
            ..Default::default()
        }),
        PeftKind::Bottleneck(BottleneckConfig::default()),
    ];
    for kind in kinds {
        let what = kind.peft_type();
        let mut m = base();
        let before: Vec<(String, Vec<f64>)> = m
            .base()
            .params
            .all()
            .into_iter()
            .map(|(n, p)| (n, p.tensor().to_f64_vec().unwrap()))
            .collect();
        m.add_adapter("a", peft(kind), 1).unwrap();
        let trainable = m.base().params.trainable();
        assert!(!trainable.is_empty());
        let cfg = AdamWConfig {
            lr: 1e-2,
            ..Default::default()
        };
        let mut opt = AdamW::new(trainable, cfg, |_| true).unwrap();
        let loss = |m: &Gpt2Peft| {
            let inputs = Gpt2Inputs {
                attention_mask: Some(&exp["attention_mask"]),
                ..Default::default()
            };
            m.model()
                .loss(&exp["input_ids"], &exp["labels"], inputs)
                .unwrap()
        };
        // An evaluation first (no graph recorded) must not leave anything behind that stops the
        // training steps' gradients.
        let first = {
            let _g = ptm_tensor::no_grad();
            loss(&m).to_scalar::<f32>().unwrap()
        };
        for _ in 0..5 {
            let l = loss(&m);
            let grads = l.backward().unwrap();
            opt.step(&grads).unwrap();
        }
        let last = loss(&m).to_scalar::<f32>().unwrap();
        eprintln!("{what}: loss {first:.4} -> {last:.4}");
        assert!(last < first - 1e-3, "{what}: {first} -> {last}");
        for (n, v) in before {
            let now = m
                .base()
                .params
                .get(&n)
                .unwrap()
                .tensor()
                .to_f64_vec()
                .unwrap();
            assert_eq!(now, v, "{what}: base parameter {n} changed");
        }
    }
}

/// The expected line is what peft's `print_trainable_parameters()` printed for this adapter loaded
/// with `is_trainable=True`.
#[test]
fn the_trainable_line_reads_as_peft_prints_it() {
    let mut m = base();
    m.load_adapter(fixture("peft/gpt2-lora"), "default")
        .unwrap();
    assert_eq!(
        m.param_counts().to_string(),
        "trainable params: 4,704 || all params: 67,632 || trainable%: 6.9553"
    );
}
