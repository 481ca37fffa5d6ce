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
    /// Speak text with a Piper voice (VITS), written as a 16-bit WAV.
    #[command(after_help = TTS_EXAMPLES)]
    Tts(Box<TtsArgs>),
}

const TTS_EXAMPLES: &str = "Examples:
  mlbench tts \"Hello there. How are you?\" --model en_US-joe-medium.onnx -o hello.wav
  mlbench tts --file story.txt --model ~/voices/ -o story.wav --length-scale 1.1
  echo \"It costs $3.50.\" | mlbench tts --file - --model voice.onnx -o - | aplay
  mlbench tts \"Read me.\" --model voice.onnx --phonemes";

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
  mlbench bench stt --model ~/models/faster-whisper-tiny.en --audio clip.wav --peers";

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
    /// What to benchmark (tts, diffuse, classify-image and classify-text are not built yet).
    #[arg(value_parser = ["stt", "tts", "diffuse", "classify-image", "classify-text", "all"])]
    pub task: String,
    /// Devices, comma-separated: cpu, cuda, cuda:N, metal, auto. Unavailable ones are skipped.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Dtypes, comma-separated: f32, f16, bf16 [default: f32 on CPU, f16 on GPUs].
    #[arg(long)]
    pub dtype: Option<String>,
    /// Model: random:tiny|base|small (real architecture, random weights, no download), or a
    /// catalog id, hub repo or local folder/file as for `mlbench stt`.
    #[arg(long, short, default_value = "random:tiny")]
    pub model: String,
    /// Also time a real transcription of this audio file (needs real weights); its first 30 s
    /// are the encoder/decoder input instead of noise.
    #[arg(long)]
    pub audio: Option<PathBuf>,
    /// Language of --audio, for the transcription and the peers.
    #[arg(long, default_value = "en")]
    pub language: String,
    /// Timed runs per configuration (the most runs with --time-budget).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Untimed warm-up runs per configuration.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Time budget in seconds per configuration instead of a fixed run count.
    #[arg(long)]
    pub time_budget: Option<f64>,
    /// Greedy decoder steps per 30 s window.
    #[arg(long, default_value_t = 32)]
    pub tokens: usize,
    /// Also write the report as JSON to FILE.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Compare with a saved JSON report: ratio of median times new/old per row.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// Also run the peer implementations (faster-whisper) on the same model and audio.
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
    /// Voice: a Piper .onnx file (with its .onnx.json beside it) or a folder holding one.
    #[arg(long, short)]
    pub model: Option<String>,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Speaker name or id (multi-speaker voices).
    #[arg(long)]
    pub speaker: Option<String>,
    /// Speed: > 1 is slower [default: the voice's, usually 1].
    #[arg(long)]
    pub length_scale: Option<f32>,
    /// Voice variation [default: the voice's, usually 0.667].
    #[arg(long)]
    pub noise_scale: Option<f32>,
    /// Rhythm variation [default: the voice's, usually 0.8].
    #[arg(long)]
    pub noise_w: Option<f32>,
    /// Seconds of silence after each sentence [default: 0.2].
    #[arg(long)]
    pub sentence_silence: Option<f32>,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the phonemes of each sentence and exit (with --json: phonemes and ids).
    #[arg(long)]
    pub phonemes: bool,
    /// Print a JSON summary (duration, real-time factor, phonemes, warnings) on stdout.
    #[arg(long)]
    pub json: bool,
    /// Real-time factor and per-stage times on stderr.
    #[arg(long)]
    pub timings: bool,
}
