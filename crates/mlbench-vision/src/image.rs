//! Reading images (any format the `image` crate decodes, EXIF orientation applied) and turning
//! them into the model's input: resize, centre crop, normalisation, channels first.

use std::path::Path;

use candle_core::{Device, Tensor};
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use crate::{Error, Result};

/// Reads an image file, with the rotation or mirroring its EXIF orientation tag asks for
/// applied (as phone cameras store portrait photos). The format is detected from the content.
pub fn load_image(path: &Path) -> Result<DynamicImage> {
    // Decoder messages can span lines; errors here are one line.
    let err = |message: String| Error::Image {
        path: path.to_path_buf(),
        message: message.split_whitespace().collect::<Vec<_>>().join(" "),
    };
    if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0) {
        return Err(err("the file is empty".into()));
    }
    let reader = ImageReader::open(path)
        .map_err(|e| err(format!("cannot open: {e}")))?
        .with_guessed_format()
        .map_err(|e| err(format!("cannot read: {e}")))?;
    if reader.format().is_none() {
        return Err(err(
            "not an image (or a format mlbench cannot read: PNG, JPEG, GIF, BMP, WebP and TIFF are supported)"
                .into(),
        ));
    }
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| err(format!("cannot decode: {e}")))?;
    // A broken EXIF block is no reason to reject the pixels.
    let orientation = decoder.orientation().ok();
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|e| err(format!("cannot decode: {e}")))?;
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    if image.width() == 0 || image.height() == 0 {
        return Err(err("the image has no pixels".into()));
    }
    Ok(image)
}

/// [`load_image`] for several files, decoded in parallel; the first failure in input order is
/// the error.
pub fn load_images<P: AsRef<Path> + Sync>(paths: &[P]) -> Result<Vec<DynamicImage>> {
    use rayon::prelude::*;
    paths.par_iter().map(|p| load_image(p.as_ref())).collect()
}

/// How the resize step sizes the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// Scale so that the shorter side has this many pixels, keeping the aspect ratio; the
    /// longer side is rounded to the nearest pixel.
    ShortSide(u32),
    /// As `ShortSide`, with the longer side rounded down (transformers' image processors).
    ShortSideFloor(u32),
    /// Scale to exactly (width, height).
    Exact(u32, u32),
}

/// The resampling filter of the resize step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Bicubic (Catmull-Rom, a = -0.5, as PIL's `BICUBIC`), antialiased when shrinking.
    Bicubic,
    /// Bilinear (PIL's `BILINEAR`), antialiased when shrinking.
    Bilinear,
    /// Nearest neighbour.
    Nearest,
    /// Lanczos with 3 lobes (PIL's `LANCZOS`).
    Lanczos,
}

/// A model's preprocessing: resize, centre crop, then `(pixel · rescale − mean) / std` per RGB
/// channel, pixels in 0..=255.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    /// The resize step.
    pub resize: Resize,
    /// The resampling filter.
    pub filter: Filter,
    /// Centre crop to (width, height) after resizing; `None` keeps the resized image.
    pub crop: Option<(u32, u32)>,
    /// Centre-crop offsets rounded half to even, as torchvision's `CenterCrop` (timm); else
    /// rounded down, as transformers' image processors.
    pub round_crop: bool,
    /// Factor applied to the 0..=255 pixel values first (1/255 for most HF processors).
    pub rescale: f32,
    /// Per-channel mean subtracted after rescaling.
    pub mean: [f32; 3],
    /// Per-channel divisor applied last.
    pub std: [f32; 3],
}

impl Preprocess {
    /// EfficientNet-Lite's: short side 256 (bicubic), centre crop 224, `(x − 127) / 128`.
    pub fn efficientnet_lite(image_size: u32) -> Self {
        Self {
            resize: Resize::ShortSide(image_size * 256 / 224),
            filter: Filter::Bicubic,
            crop: Some((image_size, image_size)),
            round_crop: false,
            rescale: 1.0,
            mean: [127.0; 3],
            std: [128.0; 3],
        }
    }

    /// The resized and cropped RGB pixels, before normalisation.
    pub fn pixels(&self, image: &DynamicImage) -> RgbImage {
        let rgb = image.to_rgb8();
        let (w, h) = rgb.dimensions();
        let (nw, nh) = match self.resize {
            Resize::Exact(nw, nh) => (nw, nh),
            Resize::ShortSide(side) | Resize::ShortSideFloor(side) => {
                let scale = side as f64 / w.min(h) as f64;
                let floor = matches!(self.resize, Resize::ShortSideFloor(_));
                let sized = |n: u32| {
                    let long = if floor {
                        (side as f64 * n as f64 / w.min(h) as f64).floor()
                    } else {
                        (n as f64 * scale).round()
                    };
                    (long as u32).max(side)
                };
                if w <= h {
                    (side, sized(h))
                } else {
                    (sized(w), side)
                }
            }
        };
        let filter = match self.filter {
            Filter::Bicubic => FilterType::CatmullRom,
            Filter::Bilinear => FilterType::Triangle,
            Filter::Nearest => FilterType::Nearest,
            Filter::Lanczos => FilterType::Lanczos3,
        };
        let resized = if (nw, nh) == (w, h) {
            rgb
        } else {
            image::imageops::resize(&rgb, nw, nh, filter)
        };
        match self.crop {
            Some((cw, ch)) if (cw, ch) != (nw, nh) => {
                // An image smaller than the crop is scaled up to cover it first.
                let resized = if nw < cw || nh < ch {
                    let scale = (cw as f64 / nw as f64).max(ch as f64 / nh as f64);
                    let (sw, sh) = (
                        ((nw as f64 * scale).ceil() as u32).max(cw),
                        ((nh as f64 * scale).ceil() as u32).max(ch),
                    );
                    image::imageops::resize(&resized, sw, sh, filter)
                } else {
                    resized
                };
                let (rw, rh) = resized.dimensions();
                let offset = |extra: u32| {
                    let half = extra / 2;
                    // Python's round(x.5) goes to the even neighbour.
                    half + u32::from(self.round_crop && extra % 2 == 1 && half % 2 == 1)
                };
                image::imageops::crop_imm(&resized, offset(rw - cw), offset(rh - ch), cw, ch)
                    .to_image()
            }
            _ => resized,
        }
    }

    /// Normalised pixels as a (3, h, w) f32 tensor, channels first.
    pub fn normalize(&self, pixels: &RgbImage, device: &Device) -> Result<Tensor> {
        let (w, h) = pixels.dimensions();
        let plane = (w * h) as usize;
        let mut data = vec![0f32; 3 * plane];
        for (i, p) in pixels.pixels().enumerate() {
            for c in 0..3 {
                data[c * plane + i] = (p[c] as f32 * self.rescale - self.mean[c]) / self.std[c];
            }
        }
        Ok(Tensor::from_vec(data, (3, h as usize, w as usize), device)?)
    }

    /// [`Preprocess::pixels`] then [`Preprocess::normalize`]: the model input of one image.
    pub fn apply(&self, image: &DynamicImage, device: &Device) -> Result<Tensor> {
        self.normalize(&self.pixels(image), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_side_resize_then_crop() {
        let p = Preprocess::efficientnet_lite(224);
        let img = DynamicImage::new_rgb8(451, 300);
        assert_eq!(p.pixels(&img).dimensions(), (224, 224));
        let tiny = DynamicImage::new_rgb8(1, 1);
        assert_eq!(p.pixels(&tiny).dimensions(), (224, 224));
        let x = p.apply(&tiny, &Device::Cpu).unwrap();
        assert_eq!(x.dims(), [3, 224, 224]);
        let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|&v| (v + 127.0 / 128.0).abs() < 1e-6));
    }

    #[test]
    fn gray_rgba_and_16_bit_become_rgb() {
        let p = Preprocess {
            resize: Resize::Exact(4, 4),
            filter: Filter::Bilinear,
            crop: None,
            round_crop: false,
            rescale: 1.0 / 255.0,
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        for img in [
            DynamicImage::new_luma8(8, 8),
            DynamicImage::new_rgba8(8, 8),
            DynamicImage::new_rgb16(8, 8),
            DynamicImage::new_luma_a16(8, 8),
        ] {
            assert_eq!(p.apply(&img, &Device::Cpu).unwrap().dims(), [3, 4, 4]);
        }
    }
}
