//! Image inputs that are not plain 8-bit RGB photos: EXIF orientation, CMYK JPEG, grayscale,
//! RGBA, 16-bit, 1×1, and files that are not images.

use std::path::{Path, PathBuf};

use candle_core::Device;
use image::{DynamicImage, ImageBuffer, Luma, Rgb, Rgba};
use mlbench_vision::image::{load_image, Preprocess};
use mlbench_vision::Error;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}

#[test]
fn exif_orientation_is_applied() {
    // Stored 32×16, left half red, right half blue, orientation 6 (rotate 90° clockwise):
    // shown 16×32 with red on top (made with PIL; ImageOps.exif_transpose agrees).
    let img = load_image(&data("exif-orientation-6.jpg"))
        .unwrap()
        .to_rgb8();
    assert_eq!(img.dimensions(), (16, 32));
    let top = img.get_pixel(8, 4);
    let bottom = img.get_pixel(8, 28);
    assert!(top[0] > 200 && top[2] < 50, "top {top:?}");
    assert!(bottom[2] > 200 && bottom[0] < 50, "bottom {bottom:?}");
}

#[test]
fn cmyk_jpeg_becomes_rgb() {
    // Pure cyan-free red: C=0 M=255 Y=255 K=0.
    let img = load_image(&data("cmyk.jpg")).unwrap().to_rgb8();
    let p = img.get_pixel(5, 5);
    assert!(p[0] > 200 && p[1] < 50 && p[2] < 50, "{p:?}");
}

#[test]
fn gray_rgba_16_bit_and_1x1_files_classify_as_rgb() {
    let dir = tempfile::tempdir().unwrap();
    let gray = ImageBuffer::from_fn(20, 10, |x, _| Luma([(x * 10) as u8]));
    let rgba = ImageBuffer::from_fn(10, 20, |x, y| Rgba([x as u8, y as u8, 7, 0]));
    let deep = ImageBuffer::from_fn(9, 9, |x, _| Rgb([x as u16 * 7000, 0, 65535]));
    let one = ImageBuffer::from_pixel(1, 1, Rgb([10u8, 20, 30]));
    let cases: Vec<(&str, DynamicImage)> = vec![
        ("gray.png", gray.into()),
        ("rgba.png", rgba.into()),
        ("deep.png", deep.into()),
        ("one.png", one.into()),
    ];
    let p = Preprocess::efficientnet_lite(224);
    for (name, img) in cases {
        let path = dir.path().join(name);
        img.save(&path).unwrap();
        let loaded = load_image(&path).unwrap();
        assert_eq!(
            (loaded.width(), loaded.height()),
            (img.width(), img.height())
        );
        let x = p.apply(&loaded, &Device::Cpu).unwrap();
        assert_eq!(x.dims(), [3, 224, 224], "{name}");
    }
    // The 16-bit file keeps its 16 bits until the conversion to 8-bit RGB.
    assert_eq!(
        load_image(&dir.path().join("deep.png")).unwrap().color(),
        image::ColorType::Rgb16
    );
}

#[test]
fn files_that_are_not_images_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.png");
    std::fs::write(&text, "just some text, not a picture\n").unwrap();
    let empty = dir.path().join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    let truncated = dir.path().join("truncated.png");
    let png = std::fs::read(data("chelsea.png")).unwrap();
    std::fs::write(&truncated, &png[..png.len() / 3]).unwrap();
    for path in [&text, &empty, &truncated, &dir.path().join("missing.png")] {
        let err = load_image(path).unwrap_err();
        assert!(matches!(err, Error::Image { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
}
