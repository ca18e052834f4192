//! Pulls a model from an Ollama-protocol registry (`registry.ollama.ai` and any other):
//! `GET /v2/<namespace>/<model>/manifests/<tag>`, then each blob by digest
//! (`/v2/<namespace>/<model>/blobs/<digest>`, following redirects to a CDN), then the
//! manifest, written last so the model appears only once every blob is in place.

use crate::download::Http;
use crate::manifest::{Manifest, MANIFEST_MEDIA_TYPE};
use crate::name::ModelName;
use crate::{Progress, Store, StoreError};

impl Store {
    /// `insecure` speaks plain HTTP instead of HTTPS (a registry on this machine or network).
    pub fn pull_from_registry(
        &self,
        name: &ModelName,
        insecure: bool,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Manifest, StoreError> {
        let http = Http::new();
        let scheme = if insecure { "http" } else { "https" };
        let base = format!("{scheme}://{}/v2/{}/{}", name.host, name.namespace, name.model);
        progress(Progress::Step("pulling manifest"));
        let bytes = http.get_bytes(&format!("{base}/manifests/{}", name.tag), MANIFEST_MEDIA_TYPE)?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Source(format!("the registry's manifest for {name} is not valid: {e}")))?;
        let blobs = std::iter::once(&manifest.config).chain(&manifest.layers);
        for layer in blobs {
            self.download_blob(&http, &format!("{base}/blobs/{}", layer.digest), &layer.digest, layer.size, progress)?;
        }
        progress(Progress::Step("writing manifest"));
        self.write_manifest(name, &manifest)?;
        Ok(manifest)
    }
}
