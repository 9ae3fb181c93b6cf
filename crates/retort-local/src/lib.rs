//! retort's embedded defaults, usable with no API key and no network beyond package
//! registries: a llama.cpp teacher ([`LocalTeacher`]), a candle MiniLM embedder
//! ([`LocalEmbedder`]), the model fetcher ([`models`]) and an OpenAI-compatible server
//! ([`serve()`]) that exposes both to other tools.

pub mod embed;
pub mod llama;
pub mod models;
pub mod serve;

pub use embed::{EmbedError, EmbedOptions, LocalEmbedder, MiniLm, MINILM_DIM};
pub use llama::{ChatTemplate, LoadError, LocalOptions, LocalTeacher};
pub use models::{fetch, models_dir, path_of, FetchError, KnownModel, MissingModel};
pub use serve::{serve, serve_on, ServeError};
