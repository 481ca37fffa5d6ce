//! Command-line flags. Defaults of the decoding knobs come from the libraries' `Params`
//! structs, never re-typed here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use mlbench_stt::transcribe::TranscribeParams;

/// mlbench: run machine-learning models locally, on CPU, CUDA or Metal.
#[derive(Debug, Parser)]
#[command(name = "mlbench", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Transcribe or translate speech with Whisper.
    #[command(after_help = STT_EXAMPLES)]
    Stt(Box<SttArgs>),
    /// List or prefetch the models of the catalog.
    #[command(subcommand, after_help = MODELS_EXAMPLES)]
    Models(ModelsCommand),
    /// Benchmark devices, dtypes and models side by side (and peers with --peers).
    #[command(after_help = BENCH_EXAMPLES)]
    Bench(Box<BenchArgs>),
    /// Classify images (ImageNet or the checkpoint's own labels).
    #[command(after_help = CLASSIFY_IMAGE_EXAMPLES)]
    ClassifyImage(Box<ClassifyImageArgs>),
    /// Speak text with a Piper or MMS-TTS voice (VITS), written as a 16-bit WAV.
    #[command(after_help = TTS_EXAMPLES)]
    Tts(Box<TtsArgs>),
    /// Classify texts (sentiment, topics, …) with a sequence classifier, or zero-shot with
    /// --labels and a sentence-embedding model.
    #[command(after_help = CLASSIFY_TEXT_EXAMPLES)]
    ClassifyText(Box<ClassifyTextArgs>),
    /// Sentence embeddings (sentence-transformers models), printed or written as .npy.
    #[command(after_help = EMBED_EXAMPLES)]
    Embed(Box<EmbedArgs>),
    /// Stable Diffusion (1.x, 2.x, SDXL) text-to-image and image-to-image, with LoRAs.
    #[command(after_help = DIFFUSE_EXAMPLES)]
    Diffuse(Box<DiffuseArgs>),
}

const DIFFUSE_EXAMPLES: &str = "Examples:
  mlbench diffuse \"a lighthouse at dusk, oil painting\" --model ~/models/sd15 -o lighthouse.png
  mlbench diffuse \"a cat\" --model stable-diffusion-v1-5/stable-diffusion-v1-5 --steps 25 --seed 42 --num-images 4
  mlbench diffuse \"a cat\" --model ~/models/sd15 --lora style.safetensors:0.8 --lora detail.safetensors --lora-report
  mlbench diffuse \"a watercolour cat\" --model ~/models/sd15 --init-image cat.jpg --strength 0.6
  mlbench diffuse \"a cat\" --model ~/models/sd15 --latents noise.safetensors --scheduler ddim --json

Prompts longer than the CLIP window (77 tokens) are truncated, as diffusers does, with a warning.";

#[derive(Debug, Args)]
pub struct DiffuseArgs {
    /// What to draw.
    pub prompt: String,
    /// Model: a diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/,
    /// scheduler/), a hub repo id (owner/name[@revision]) or a catalog id
    /// [default: the catalog's default diffuse model].
    #[arg(long, short)]
    pub model: Option<String>,
    /// Output PNG (written atomically, with a `parameters` text chunk); with --num-images N > 1,
    /// NAME-1.png … NAME-N.png.
    #[arg(long, short, default_value = "out.png")]
    pub output: std::path::PathBuf,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Negative prompt.
    #[arg(long, default_value_t = mlbench_diffusion::Txt2ImgParams::default().negative_prompt)]
    pub negative_prompt: String,
    /// Denoising steps.
    #[arg(long, default_value_t = mlbench_diffusion::Txt2ImgParams::default().steps)]
    pub steps: usize,
    /// Classifier-free guidance scale (≤ 1: off).
    #[arg(long, default_value_t = mlbench_diffusion::Txt2ImgParams::default().guidance)]
    pub guidance: f64,
    /// Width in pixels, a multiple of 8 [default: the model's, or --init-image's / --latents'].
    #[arg(long)]
    pub width: Option<usize>,
    /// Height in pixels, a multiple of 8 [default: as --width].
    #[arg(long)]
    pub height: Option<usize>,
    /// Seed (image k of a batch uses seed + k); same seed, same device: same bytes.
    #[arg(long, default_value_t = mlbench_diffusion::Txt2ImgParams::default().seed)]
    pub seed: u64,
    /// Images to make.
    #[arg(long, default_value_t = mlbench_diffusion::Txt2ImgParams::default().num_images)]
    pub num_images: usize,
    /// Sampler: ddim, euler, euler_karras, euler_a, dpmpp_2m, dpmpp_2m_karras, lcm [default: the
    /// model's scheduler if implemented, else dpmpp_2m]; the model's scheduler_config.json sets
    /// its prediction type, betas and timestep spacing.
    #[arg(long)]
    pub scheduler: Option<String>,
    /// Initial noise from a .safetensors file (tensor `latents`, shape (1 or N, 4, H/8, W/8)),
    /// multiplied by the sampler's initial sigma as diffusers does.
    #[arg(long, value_name = "FILE")]
    pub latents: Option<std::path::PathBuf>,
    /// img2img: start from this image (resized to the output size).
    #[arg(long, value_name = "IMAGE")]
    pub init_image: Option<std::path::PathBuf>,
    /// img2img: share of the schedule to run (0 keeps the image, 1 ignores it).
    #[arg(long, default_value_t = mlbench_diffusion::Txt2ImgParams::default().strength)]
    pub strength: f64,
    /// A LoRA to merge while loading, FILE or FILE:SCALE (default scale 1.0); repeatable.
    /// kohya/sd-scripts and diffusers/PEFT formats, Linear and conv (LoCon).
    #[arg(long, value_name = "FILE[:SCALE]")]
    pub lora: Vec<String>,
    /// Print which modules each LoRA patched and which of its keys matched nothing.
    #[arg(long)]
    pub lora_report: bool,
    /// Print a JSON summary (files, seeds, sampler, LoRA report) on stdout.
    #[arg(long)]
    pub json: bool,
}

const CLASSIFY_TEXT_EXAMPLES: &str = "Examples:
  mlbench classify-text \"I loved this film!\" \"The service was slow.\"
  mlbench classify-text --file reviews.txt --model cardiffnlp/twitter-roberta-base-sentiment-latest --top-k 0 --json
  cat tweets.txt | mlbench classify-text --file - --model ~/models/my-classifier --function sigmoid
  mlbench classify-text \"The striker scored twice.\" --labels \"sports,politics,tech\"
  mlbench classify-text --file news.txt --labels \"sports,politics\" --hypothesis-template \"This news is about {}.\"";

const EMBED_EXAMPLES: &str = "Examples:
  mlbench embed \"A man is eating food.\" \"A man is riding a horse.\"
  mlbench embed --file sentences.txt -o vectors.npy
  mlbench embed --file - --model ~/models/all-minilm-l6-v2 --json < sentences.txt";

const TTS_EXAMPLES: &str = "Examples:
  mlbench tts \"Hello there. How are you?\" --model en_US-joe-medium.onnx -o hello.wav
  mlbench tts --file story.txt --model ~/voices/ -o story.wav --length-scale 1.1
  echo \"It costs $3.50.\" | mlbench tts --file - --model voice.onnx -o - | aplay
  mlbench tts \"Read me.\" --model voice.onnx --phonemes
  mlbench tts \"Guten Tag.\" --model facebook/mms-tts-deu -o tag.wav   # MMS-TTS (CC-BY-NC-4.0)";

const CLASSIFY_IMAGE_EXAMPLES: &str = "Examples:
  mlbench classify-image cat.jpg --model ~/models/efficientnet-lite0
  mlbench classify-image photos/ --model ./model.safetensors --top-k 3 --json
  mlbench classify-image a.png b.jpg --model DIR --batch-size 16 --device cuda";

const STT_EXAMPLES: &str = "Examples:
  mlbench stt meeting.wav
  mlbench stt interview.mp3 --model whisper-small --language de --task translate
  mlbench stt talk.flac --output-format srt -o talk.srt
  mlbench stt clip.wav --model ~/models/faster-whisper-tiny.en --beam-size 1 --json
  mlbench stt clip.wav --model openai/whisper-large-v3-turbo --device cuda --dtype f16";

const MODELS_EXAMPLES: &str = "Examples:
  mlbench models list
  mlbench models list --task stt --json
  mlbench models pull whisper-base.en";

const BENCH_EXAMPLES: &str = "Examples:
  mlbench bench stt                                   # Whisper tiny, random weights, CPU f32
  mlbench bench stt --device cpu,cuda --dtype f32,f16 --model random:base
  mlbench bench stt --model whisper-tiny.en --audio clip.wav --json run.json
  mlbench bench stt --compare run.json                # ratio new/old per row
  mlbench bench stt --model ~/models/faster-whisper-tiny.en --audio clip.wav --peers
  mlbench bench tts                                   # Piper medium voice shape, random weights
  mlbench bench tts --model en_US-joe-medium.onnx --peers   # vs Piper on onnxruntime
  mlbench bench classify-image --batch-size 1,8,32    # ResNet-50 and ViT-B/16, random weights
  mlbench bench classify-image --model ~/models/efficientnet-lite0 --peers
  mlbench bench all --runs 3 --json run.json";

/// Where and how to run a model.
#[derive(Debug, Clone, Args)]
pub struct DeviceArgs {
    /// Device: auto (CUDA, then Metal, then CPU), cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Compute dtype: f32, f16 or bf16 [default: f32 on CPU, f16 on GPUs].
    #[arg(long)]
    pub dtype: Option<String>,
}

#[derive(Debug, Args)]
pub struct SttArgs {
    /// Audio files: WAV (any rate, channels, 8/16/24/32-bit or float), FLAC, MP3, Ogg Vorbis.
    #[arg(required = true)]
    pub audio: Vec<PathBuf>,
    /// Model: catalog id, hub repo id (owner/name[@revision]), local directory or .gguf file
    /// [default: the catalog's default STT model].
    #[arg(long, short)]
    pub model: Option<String>,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// transcribe, or translate into English.
    #[arg(long, default_value = "transcribe")]
    pub task: String,
    /// Spoken language (code such as en, de, or a name); detected when omitted.
    #[arg(long)]
    pub language: Option<String>,
    /// Beam width at temperature 0 (1 = greedy).
    #[arg(long, default_value_t = TranscribeParams::default().beam_size)]
    pub beam_size: usize,
    /// Candidates sampled at temperatures above 0.
    #[arg(long, default_value_t = TranscribeParams::default().best_of)]
    pub best_of: usize,
    /// Beam search patience.
    #[arg(long, default_value_t = TranscribeParams::default().patience)]
    pub patience: f32,
    /// First sampling temperature.
    #[arg(long, default_value_t = TranscribeParams::default().temperatures[0])]
    pub temperature: f32,
    /// Temperature step of the fallback (0 disables fallback).
    #[arg(long, default_value_t = 0.2)]
    pub temperature_increment_on_fallback: f32,
    /// Fall back when the text's gzip compression ratio is above this.
    #[arg(long, default_value_t = TranscribeParams::default().compression_ratio_threshold.unwrap())]
    pub compression_ratio_threshold: f32,
    /// Fall back when the average log-probability is below this.
    #[arg(long, default_value_t = TranscribeParams::default().logprob_threshold.unwrap(), allow_hyphen_values = true)]
    pub logprob_threshold: f32,
    /// Treat a window as silence above this no-speech probability.
    #[arg(long, default_value_t = TranscribeParams::default().no_speech_threshold.unwrap())]
    pub no_speech_threshold: f32,
    /// Windows quieter than this RMS level (dBFS) are silence and not decoded.
    #[arg(long, default_value_t = TranscribeParams::default().silence_threshold_db.unwrap(), allow_hyphen_values = true)]
    pub silence_threshold_db: f32,
    /// Do not feed the previous window's text as a prompt.
    #[arg(long)]
    pub no_condition_on_previous_text: bool,
    /// Text to prime the first window with (names, spelling, punctuation style).
    #[arg(long)]
    pub initial_prompt: Option<String>,
    /// Decode without timestamps (segments are whole 30 s windows).
    #[arg(long)]
    pub without_timestamps: bool,
    /// Seed for sampling at temperatures above 0.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output format: txt, srt, vtt or json.
    #[arg(long, short = 'f', default_value = "txt")]
    pub output_format: String,
    /// Write to FILE instead of stdout (written atomically).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Shorthand for --output-format json.
    #[arg(long)]
    pub json: bool,
    /// Print per-stage timings to stderr.
    #[arg(long)]
    pub timings: bool,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Print the catalog: default and alternative models per task.
    List {
        /// Only this task (stt, ...).
        #[arg(long)]
        task: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Download a catalog model (or any hub repo's listed files) into the Hugging Face cache.
    Pull {
        /// Catalog id.
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to benchmark: stt, tts, classify-image, classify-text, or all of them (diffuse is
    /// not built yet and is listed as skipped).
    #[arg(value_parser = ["stt", "tts", "diffuse", "classify-image", "classify-text", "all"])]
    pub task: String,
    /// Devices, comma-separated: cpu, cuda, cuda:N, metal, auto. Unavailable ones are skipped.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Dtypes, comma-separated: f32, f16, bf16 [default: f32 on CPU, f16 on GPUs].
    #[arg(long)]
    pub dtype: Option<String>,
    /// Model of the one task named [default: the real architecture with random weights, no
    /// download]. stt: random:tiny|base|small, or a catalog id, hub repo or local folder/file as
    /// for `mlbench stt`. tts: random:medium, or a Piper VOICE.onnx (or its folder). diffuse:
    /// random:sd15 (default: SD 1.5 UNet and VAE at 512×512) or random:tiny. classify-image: random:resnet-50 or random:vit-b-16 (default: both), or a checkpoint as
    /// for `mlbench classify-image`. classify-text: random:minilm or random:bert-base (default:
    /// both), or a sentence-transformers folder (modules.json) or text-classification checkpoint.
    #[arg(long, short)]
    pub model: Option<String>,
    /// stt: also time a real transcription of this audio file (needs real weights); its first
    /// 30 s are the encoder/decoder input instead of noise.
    #[arg(long)]
    pub audio: Option<PathBuf>,
    /// stt: language of --audio, for the transcription and the peers.
    #[arg(long, default_value = "en")]
    pub language: String,
    /// tts: the text to synthesize (phonemized once, untimed; one model call per sentence).
    #[arg(long, default_value = crate::bench::tts::DEFAULT_TEXT)]
    pub text: String,
    /// classify-image, classify-text: batch sizes (images or texts per batch), comma-separated
    /// (one row each).
    #[arg(long, default_value = "1,8")]
    pub batch_size: String,
    /// Timed runs per configuration (the most runs with --time-budget).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Untimed warm-up runs per configuration.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Time budget in seconds per configuration instead of a fixed run count.
    #[arg(long)]
    pub time_budget: Option<f64>,
    /// stt: greedy decoder steps per 30 s window.
    #[arg(long, default_value_t = 32)]
    pub tokens: usize,
    /// Also write the report as JSON to FILE.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Compare with a saved JSON report: ratio of median times new/old per row.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// Also run the peer implementations on the same model and inputs, with the same thread
    /// count (stt: faster-whisper; tts: Piper on onnxruntime; classify-image: transformers /
    /// PyTorch; classify-text: sentence-transformers or transformers). A peer that is not
    /// installed is a skipped row; see benches/README.md.
    #[arg(long)]
    pub peers: bool,
}

#[derive(Debug, Args)]
pub struct ClassifyImageArgs {
    /// Image files (PNG, JPEG, GIF, BMP, WebP, TIFF) or directories (their images, sorted).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Model: a directory with model.safetensors (+ config.json), a .safetensors file, or a
    /// catalog id / hub repo id (owner/name[@revision]).
    #[arg(long, short)]
    pub model: Option<String>,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Labels per image.
    #[arg(long, default_value_t = mlbench_vision::ClassifyParams::default().top_k)]
    pub top_k: usize,
    /// Images per forward pass.
    #[arg(long, default_value_t = mlbench_vision::ClassifyParams::default().batch_size)]
    pub batch_size: usize,
    /// Print JSON: one {"image", "predictions": [{"label", "score"}]} object per image.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TtsArgs {
    /// The text to speak (or use --file).
    pub text: Option<String>,
    /// Read the text from FILE (one sentence or paragraph per line); `-` reads stdin.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Output WAV file (16-bit, the voice's sample rate), written atomically; `-` for stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Voice: a Piper .onnx file (with its .onnx.json beside it), an MMS-TTS / transformers
    /// VitsModel checkpoint (hub repo id such as facebook/mms-tts-eng, or a folder with
    /// config.json, vocab.json, model.safetensors), a folder holding either, or a catalog id
    /// (`mlbench models list`) [default: the catalog's default voice, piper-en_US-joe-medium].
    #[arg(long, short)]
    pub model: Option<String>,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Speaker name or id (multi-speaker voices).
    #[arg(long)]
    pub speaker: Option<String>,
    /// Speed: > 1 is slower [default: the voice's, usually 1; MMS: 1 / speaking_rate].
    #[arg(long)]
    pub length_scale: Option<f32>,
    /// Voice variation [default: the voice's, usually 0.667; MMS: noise_scale].
    #[arg(long)]
    pub noise_scale: Option<f32>,
    /// Rhythm variation [default: the voice's, usually 0.8; MMS: noise_scale_duration].
    #[arg(long)]
    pub noise_w: Option<f32>,
    /// Seconds of silence after each sentence [default: 0.2].
    #[arg(long)]
    pub sentence_silence: Option<f32>,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the phonemes of each sentence and exit (with --json: phonemes and ids); for MMS
    /// voices, the characters the tokenizer keeps.
    #[arg(long)]
    pub phonemes: bool,
    /// Print a JSON summary (duration, real-time factor, phonemes, warnings) on stdout.
    #[arg(long)]
    pub json: bool,
    /// Real-time factor and per-stage times on stderr.
    #[arg(long)]
    pub timings: bool,
}

/// Texts to classify or embed: arguments, or one per line from a file.
#[derive(Debug, Args)]
pub struct ClassifyTextArgs {
    /// The texts (or use --file).
    pub texts: Vec<String>,
    /// Read the texts from FILE, one per line (blank lines are skipped); `-` reads stdin.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Model: a directory with config.json, model.safetensors and tokenizer.json, a catalog id
    /// or a hub repo id [default: the catalog's classify-text model; with --labels, its embed
    /// model].
    #[arg(long, short)]
    pub model: Option<String>,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Labels per text, best first (0: all).
    #[arg(long, default_value_t = mlbench_text::ClassifyParams::default().top_k)]
    pub top_k: usize,
    /// softmax, sigmoid or none (raw logits) [default: from the model's problem_type: sigmoid
    /// for multi-label or one-label models, else softmax].
    #[arg(long, value_parser = ["softmax", "sigmoid", "none"])]
    pub function: Option<String>,
    /// Texts per forward pass.
    #[arg(long, default_value_t = mlbench_text::ClassifyParams::default().batch_size)]
    pub batch_size: usize,
    /// Zero-shot: comma-separated candidate labels, ranked by the cosine similarity between the
    /// text's sentence embedding and the hypothesis of each label. Scores are softmax(20 ·
    /// cosine) (they sum to 1); the cosines are shown too.
    #[arg(long)]
    pub labels: Option<String>,
    /// Zero-shot: the sentence each label is put into, `{}` marking the label.
    #[arg(long, default_value_t = mlbench_text::ZeroShotParams::default().hypothesis_template)]
    pub hypothesis_template: String,
    /// Print JSON: per text a list of {"label", "score"} (like Hugging Face's pipeline); with
    /// --labels, per text {"sequence", "labels", "scores", "similarities"}.
    #[arg(long)]
    pub json: bool,
}

/// Texts to embed.
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// The texts (or use --file).
    pub texts: Vec<String>,
    /// Read the texts from FILE, one per line (blank lines are skipped); `-` reads stdin.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Model: a sentence-transformers directory (modules.json, 1_Pooling/, …), a catalog id or a
    /// hub repo id [default: the catalog's embed model].
    #[arg(long, short)]
    pub model: Option<String>,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Texts per forward pass.
    #[arg(long, default_value_t = mlbench_text::EmbedParams::default().batch_size)]
    pub batch_size: usize,
    /// Do not L2-normalise, even if the model does.
    #[arg(long)]
    pub no_normalize: bool,
    /// Write a NumPy FILE.npy (f32, shape [texts, dim]), atomically; with --json, JSON to FILE.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Print JSON: [{"text", "embedding"}] (default: one line of numbers per text).
    #[arg(long)]
    pub json: bool,
}
