#!/usr/bin/env python3
"""Write the service-account tokens of this folder (see README.md), signed with the
Kubernetes project's own test keys (sa-rsa.key, sa-ecdsa.key).

The claims are laid out as kube-apiserver writes them: go-jose merges the public and the
private claims into one JSON object and marshals it with Go's encoding/json, so keys are
sorted at every level, there is no whitespace, and numbers are integers. The header is
{"alg":...,"kid":...} with kid = base64url(SHA-256(SubjectPublicKeyInfo DER)), as in
pkg/serviceaccount/jwt.go. Needs python3 and the openssl CLI; run it from this folder.
The RS256 tokens come out byte for byte the same on every run; ES256 signatures are
randomised, so those differ (and verify) each time.
"""
import base64
import json
import subprocess

IAT = 1764547200  # 2025-12-01T00:00:00Z
ISSUER = "https://issuer.example.com"  # openid-configuration.json's issuer


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def go_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def kid(pub: str) -> str:
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in", pub, "-outform", "DER"],
                         check=True, capture_output=True).stdout
    digest = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=der,
                            check=True, capture_output=True).stdout
    return b64url(digest)


def der_ecdsa_to_raw(sig: bytes) -> bytes:
    # ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } -> r || s, 32 octets each.
    assert sig[0] == 0x30
    i = 2 if sig[1] < 0x80 else 3
    out = b""
    for _ in range(2):
        assert sig[i] == 0x02
        n = sig[i + 1]
        out += sig[i + 2:i + 2 + n].lstrip(b"\0").rjust(32, b"\0")
        i += 2 + n
    return out


def sign(alg: str, key: str, pub: str, claims: dict) -> str:
    header = {"alg": alg, "kid": kid(pub)}
    signing_input = (b64url(go_json(header)) + "." + b64url(go_json(claims))).encode()
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input,
                         check=True, capture_output=True).stdout
    if alg == "ES256":
        sig = der_ecdsa_to_raw(sig)
    return signing_input.decode() + "." + b64url(sig)


def projected(audience, exp_seconds, jti, warnafter=None):
    # pkg/serviceaccount/claims.go Claims(): a token bound to a pod, with the pod's node
    # (ServiceAccountTokenPodNodeInfo) and a jti (ServiceAccountTokenJTI), both on by default
    # since Kubernetes 1.30.
    k8s = {
        "namespace": "prod",
        "node": {"name": "worker-2", "uid": "5f3c2a7e-9b41-4d6a-8c1e-0a7d2e4b9f13"},
        "pod": {"name": "api-7d9f8b6c5d-x2kq4", "uid": "a3f1c9e2-6b7d-4e8a-9c2f-1d5e7b3a0c48"},
        "serviceaccount": {"name": "api", "uid": "e1b2c3d4-5f6a-4b7c-8d9e-0f1a2b3c4d5e"},
    }
    if warnafter is not None:
        k8s["warnafter"] = IAT + warnafter
    return {
        "aud": [audience],
        "exp": IAT + exp_seconds,
        "iat": IAT,
        "iss": ISSUER,
        "jti": jti,
        "kubernetes.io": k8s,
        "nbf": IAT,
        "sub": "system:serviceaccount:prod:api",
    }


def legacy():
    # pkg/serviceaccount/legacy.go LegacyClaims(): the token controller's Secret token, no
    # expiry, no audience, issuer "kubernetes/serviceaccount".
    return {
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": "prod",
        "kubernetes.io/serviceaccount/secret.name": "api-token-7x9qk",
        "kubernetes.io/serviceaccount/service-account.name": "api",
        "kubernetes.io/serviceaccount/service-account.uid": "e1b2c3d4-5f6a-4b7c-8d9e-0f1a2b3c4d5e",
        "sub": "system:serviceaccount:prod:api",
    }


tokens = {
    # A projected volume with `audience: signet`, `expirationSeconds: 3600`.
    "projected-rs256.jwt": ("RS256", "sa-rsa", projected(
        "signet", 3600, "8c0d5f7e-2a4b-4c6d-9e1f-3a5b7c9d1e2f")),
    "projected-es256.jwt": ("ES256", "sa-ecdsa", projected(
        "signet", 3600, "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9")),
    # The default kube-api-access volume: the API server's audience, 3607 s asked for and
    # extended to a year (--service-account-extend-token-expiration), warnafter at 3607 s.
    "projected-default-audience-es256.jwt": ("ES256", "sa-ecdsa", projected(
        "https://kubernetes.default.svc.cluster.local", 365 * 24 * 3600,
        "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", warnafter=3607)),
    "legacy-secret-rs256.jwt": ("RS256", "sa-rsa", legacy()),
}
for name, (alg, key, claims) in tokens.items():
    with open(name, "w") as f:
        f.write(sign(alg, f"{key}.key", f"{key}.pub", claims) + "\n")
    print(name)
