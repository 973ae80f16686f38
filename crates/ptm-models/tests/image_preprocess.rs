//! ViT preprocessing against transformers' ViTImageProcessor (PIL backend), on a PNG shrunk
//! (antialiased bilinear), a PNG enlarged and a JPEG, all to 12×12.
//!
//! Tolerance, in 8-bit levels before rescaling (one level is 2/255 ≈ 0.0078 after the (x−0.5)/0.5
//! normalisation): PNG ≤ 1 level (PIL rounds in fixed point after each pass, here in f64), JPEG ≤ 3
//! levels (the decoders' inverse DCTs round differently).

mod common;

use common::fixture;
use ptm_models::vit::ImageProcessorConfig;

#[test]
fn pixel_values_match_vit_image_processor() {
    let dir = fixture("images");
    let cfg = ImageProcessorConfig::from_dir(&dir).unwrap();
    let files = ["wide.png", "small.png", "photo.jpg"].map(|f| dir.join(f));
    let got = cfg.preprocess_files(&files).unwrap();
    let want = ptm_tensor::safetensors::load(dir.join("expected.safetensors")).unwrap();
    let want = &want["pixel_values"];
    assert_eq!(got.dims(), want.dims());
    let (g, w) = (got.to_f64_vec().unwrap(), want.to_f64_vec().unwrap());
    let per_image = g.len() / 3;
    for (i, (levels, name)) in [(1.0, "wide.png"), (1.0, "small.png"), (3.0, "photo.jpg")]
        .iter()
        .enumerate()
    {
        let range = i * per_image..(i + 1) * per_image;
        let worst = g[range.clone()]
            .iter()
            .zip(&w[range])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        let tol = levels * 2.0 / 255.0 + 1e-6;
        eprintln!("{name}: max difference {:.2} levels", worst * 255.0 / 2.0);
        assert!(worst <= tol, "{name}: max difference {worst} > {tol}");
    }
}

#[test]
fn unreadable_images_and_bad_configs_are_named() {
    let dir = common::scratch("bad-images");
    std::fs::write(dir.join("not.png"), b"definitely not a png").unwrap();
    let cfg = ImageProcessorConfig::default();
    let e = cfg
        .preprocess_files(&[dir.join("not.png")])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not.png"), "{e}");
    let e = cfg
        .preprocess_files(&[dir.join("missing.jpg")])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("missing.jpg"), "{e}");
    let two_channels = ImageProcessorConfig {
        image_mean: vec![0.5, 0.5],
        ..Default::default()
    };
    let e = two_channels
        .preprocess(&[(1, 1, vec![0, 0, 0])])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("image_mean"), "{e}");
    std::fs::write(dir.join("preprocessor_config.json"), r#"{"resample": 3}"#).unwrap();
    let e = ImageProcessorConfig::from_dir(&dir)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("preprocessor_config.json") && e.contains("resample 3"),
        "{e}"
    );
}
