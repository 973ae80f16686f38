//! Safetensors round trips for every dtype, views included, and the file layout other readers expect.

use ptm_tensor::{safetensors, DType, Device, Rng, Tensor};

#[test]
fn every_dtype_round_trips_through_a_file() {
    let dir = std::env::temp_dir().join(format!("ptm-st-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    let mut rng = Rng::new(1);
    let base = Tensor::randn(0.0, 1.0, [3, 4], DType::F64, &mut rng, &Device::Cpu).unwrap();
    let tensors: Vec<(String, Tensor)> = [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::BF16,
        DType::U32,
        DType::I64,
    ]
    .into_iter()
    .map(|dt| {
        (
            format!("w.{dt:?}"),
            base.abs()
                .unwrap()
                .mul_scalar(10.0)
                .unwrap()
                .to_dtype(dt)
                .unwrap(),
        )
    })
    .chain([("transposed".to_string(), base.t().unwrap())])
    .collect();
    safetensors::save(tensors.iter().map(|(n, t)| (n.as_str(), t)), &path).unwrap();
    let back = safetensors::load(&path).unwrap();
    assert_eq!(back.len(), tensors.len());
    for (name, t) in &tensors {
        let b = &back[name];
        assert_eq!(b.dtype(), t.dtype(), "{name}");
        assert_eq!(b.dims(), t.dims(), "{name}");
        assert_eq!(b.to_f64_vec().unwrap(), t.to_f64_vec().unwrap(), "{name}");
    }
    // The header is JSON naming dtype, shape and byte offsets, as the format specifies.
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    assert!(
        header.contains("\"w.BF16\":{\"dtype\":\"BF16\",\"shape\":[3,4]"),
        "{header}"
    );
    let no_tmp = std::fs::read_dir(&dir)
        .unwrap()
        .all(|e| !e.unwrap().file_name().to_string_lossy().contains("tmp"));
    assert!(no_tmp, "the temporary file was renamed into place");
    std::fs::remove_dir_all(&dir).ok();
}
