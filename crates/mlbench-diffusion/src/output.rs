//! PNG output with the generation parameters in a `parameters` tEXt chunk, in the format the
//! popular web UIs (AUTOMATIC1111, Forge, …) write and read back:
//!
//! ```text
//! a photo of a cat <lora:style:0.8>
//! Negative prompt: blurry
//! Steps: 30, Sampler: DPM++ 2M, CFG scale: 7.5, Seed: 42, Size: 512x512, Model: sd15
//! ```

use crate::schedulers::SchedulerKind;
use crate::{Error, Result};

/// What a PNG's `parameters` chunk records.
#[derive(Debug, Clone)]
pub struct ImageParameters<'a> {
    /// The prompt.
    pub prompt: &'a str,
    /// The negative prompt (omitted when empty).
    pub negative_prompt: &'a str,
    /// Steps.
    pub steps: usize,
    /// Sampler.
    pub sampler: SchedulerKind,
    /// CFG scale.
    pub guidance: f64,
    /// Seed of this image.
    pub seed: u64,
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
    /// Model name.
    pub model: &'a str,
    /// LoRAs (name, scale), written as `<lora:name:scale>` after the prompt.
    pub loras: &'a [(String, f32)],
    /// img2img strength.
    pub denoising_strength: Option<f64>,
}

impl ImageParameters<'_> {
    /// The `parameters` text.
    pub fn to_text(&self) -> String {
        let mut prompt = self.prompt.to_string();
        for (name, scale) in self.loras {
            prompt.push_str(&format!(" <lora:{name}:{scale}>"));
        }
        let mut text = prompt;
        if !self.negative_prompt.is_empty() {
            text.push_str(&format!("\nNegative prompt: {}", self.negative_prompt));
        }
        text.push_str(&format!(
            "\nSteps: {}, Sampler: {}, CFG scale: {}, Seed: {}, Size: {}x{}, Model: {}",
            self.steps,
            self.sampler.webui_name(),
            self.guidance,
            self.seed,
            self.width,
            self.height,
            self.model
        ));
        if let Some(s) = self.denoising_strength {
            text.push_str(&format!(", Denoising strength: {s}"));
        }
        text
    }
}

/// Encodes `image` as PNG with `parameters` in a tEXt chunk.
pub fn encode_png(image: &image::RgbImage, parameters: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let err = |e: png::EncodingError| Error::Invalid(format!("PNG encoding: {e}"));
    {
        let mut encoder = png::Encoder::new(&mut bytes, image.width(), image.height());
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        // tEXt holds Latin-1 only; other prompts go to an iTXt chunk (as PIL and the web UIs do).
        if parameters.chars().all(|c| (c as u32) < 256) {
            encoder.add_text_chunk("parameters".into(), parameters.into())
        } else {
            encoder.add_itxt_chunk("parameters".into(), parameters.into())
        }
        .map_err(err)?;
        let mut writer = encoder.write_header().map_err(err)?;
        writer.write_image_data(image.as_raw()).map_err(err)?;
        writer.finish().map_err(err)?;
    }
    Ok(bytes)
}

/// The `parameters` text of a PNG made by [`encode_png`] (or a web UI), if any.
pub fn read_parameters(png_bytes: &[u8]) -> Result<Option<String>> {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let reader = decoder
        .read_info()
        .map_err(|e| Error::Invalid(format!("PNG: {e}")))?;
    let info = reader.info();
    let latin1 = info
        .uncompressed_latin1_text
        .iter()
        .find(|c| c.keyword == "parameters")
        .map(|c| c.text.clone());
    let utf8 = info
        .utf8_text
        .iter()
        .find(|c| c.keyword == "parameters")
        .and_then(|c| c.get_text().ok());
    Ok(latin1.or(utf8))
}

/// Decodes a PNG to 8-bit RGB.
pub fn decode_png(png_bytes: &[u8]) -> Result<image::RgbImage> {
    image::load_from_memory_with_format(png_bytes, image::ImageFormat::Png)
        .map(|i| i.to_rgb8())
        .map_err(|e| Error::Invalid(format!("PNG: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_round_trip_through_png() {
        let p = ImageParameters {
            prompt: "a cat",
            negative_prompt: "blurry",
            steps: 20,
            sampler: SchedulerKind::DpmPp2mKarras,
            guidance: 7.5,
            seed: 42,
            width: 512,
            height: 768,
            model: "sd15",
            loras: &[("style".into(), 0.5)],
            denoising_strength: None,
        };
        let text = p.to_text();
        assert_eq!(
            text,
            "a cat <lora:style:0.5>\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M Karras, \
             CFG scale: 7.5, Seed: 42, Size: 512x768, Model: sd15"
        );
        let img = image::RgbImage::from_pixel(3, 2, image::Rgb([1, 2, 3]));
        let png = encode_png(&img, &text).unwrap();
        assert_eq!(
            read_parameters(&png).unwrap().as_deref(),
            Some(text.as_str())
        );
        let back = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(back, img);
    }
}
