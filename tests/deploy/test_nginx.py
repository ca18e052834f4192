"""hearth behind Debian's nginx with deploy/nginx/hearth.conf and a self-signed certificate:
the official clients through TLS with an API key, answers that stream through the proxy
token by token, and refusals in each API's shape.

Run by scripts/deploy-tests, which starts both servers and sets HEARTH_PROXY_URL (nginx),
HEARTH_TEST_CERT (the certificate to trust), HEARTH_TEST_KEY (a chat key) and
HEARTH_TEST_MODEL.
"""

import json
import os
import time
import unittest

import anthropic
import httpx
import ollama
import openai

URL = os.environ["HEARTH_PROXY_URL"]
CERT = os.environ["HEARTH_TEST_CERT"]
KEY = os.environ["HEARTH_TEST_KEY"]
MODEL = os.environ.get("HEARTH_TEST_MODEL", "smollm2")
STORY = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]


def assert_spread(test, arrivals):
    """Pieces that came token by token: many of them, over a stretch of time, most apart
    from the one before by more than a buffer flush would leave."""
    test.assertGreaterEqual(len(arrivals), 16, arrivals)
    span = arrivals[-1] - arrivals[0]
    test.assertGreater(span, 0.1, f"{len(arrivals)} pieces in {span * 1e3:.1f} ms: one burst")
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    apart = sum(1 for gap in gaps if gap > 0.002)
    test.assertGreater(apart, len(gaps) // 2, f"only {apart} of {len(gaps)} gaps over 2 ms: bursts")
    return span


class ThroughNginx(unittest.TestCase):
    def openai(self, key=KEY):
        return openai.OpenAI(
            base_url=f"{URL}/v1", api_key=key, max_retries=0, http_client=httpx.Client(verify=CERT, timeout=120)
        )

    def test_openai_client_with_a_key(self):
        client = self.openai()
        self.assertIn(f"{MODEL}:latest", [m.id for m in client.models.list()])
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "What is the capital of France?"}],
            temperature=0, max_tokens=16,
        )
        self.assertIn("Paris", reply.choices[0].message.content)

    def test_an_openai_stream_arrives_token_by_token(self):
        stream = self.openai().chat.completions.create(
            model=MODEL, messages=STORY, max_tokens=48, seed=3, stream=True
        )
        arrivals = [time.monotonic() for chunk in stream if chunk.choices and chunk.choices[0].delta.content]
        span = assert_spread(self, arrivals)
        print(f"openai stream through nginx: {len(arrivals)} pieces over {span * 1e3:.0f} ms")

    def test_an_ollama_stream_arrives_token_by_token(self):
        client = ollama.Client(host=URL, headers={"Authorization": f"Bearer {KEY}"}, verify=CERT)
        parts = client.chat(model=MODEL, messages=STORY, stream=True, options={"num_predict": 48, "seed": 3})
        arrivals = [time.monotonic() for part in parts if part.message.content]
        span = assert_spread(self, arrivals)
        print(f"ollama stream through nginx: {len(arrivals)} pieces over {span * 1e3:.0f} ms")

    def test_anthropic_client_with_its_header(self):
        client = anthropic.Anthropic(
            base_url=URL, api_key=KEY, max_retries=0, http_client=anthropic.DefaultHttpxClient(verify=CERT, timeout=120)
        )
        message = client.messages.create(
            model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
        )
        self.assertEqual(message.role, "assistant")
        with self.assertRaises(anthropic.AuthenticationError) as refused:
            anthropic.Anthropic(
                base_url=URL, api_key="hearth-wrong", max_retries=0, http_client=anthropic.DefaultHttpxClient(verify=CERT)
            ).messages.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "Hi"}])
        self.assertEqual(refused.exception.body["error"]["type"], "authentication_error")

    def test_no_key_or_a_wrong_one_is_refused_in_openai_s_shape(self):
        with self.assertRaises(openai.AuthenticationError) as refused:
            self.openai(key="hearth-0000").models.list()
        self.assertEqual(refused.exception.code, "invalid_api_key")
        # The SDK will not send no key at all; a plain client does.
        reply = httpx.get(f"{URL}/v1/models", verify=CERT)
        self.assertEqual(reply.status_code, 401)
        self.assertEqual(reply.json()["error"]["code"], "invalid_api_key")
        self.assertEqual(reply.headers["www-authenticate"], "Bearer")

    def test_bodies_over_the_limits_get_413_as_json(self):
        client = httpx.Client(verify=CERT, timeout=60, headers={"Authorization": f"Bearer {KEY}"})
        # Past hearth's 2 MiB, within nginx's 4 MiB: hearth refuses, in OpenAI's shape.
        padding = "x" * (3 * 1024 * 1024)
        body = {"model": MODEL, "messages": [{"role": "user", "content": padding}]}
        reply = client.post(f"{URL}/v1/chat/completions", json=body)
        self.assertEqual(reply.status_code, 413, reply.text[:200])
        self.assertIn("HEARTH_MAX_BODY_BYTES", reply.json()["error"]["message"])
        # Past nginx's limit: nginx refuses, still as JSON.
        reply = client.post(f"{URL}/api/chat", content=b"x" * (5 * 1024 * 1024))
        self.assertEqual(reply.status_code, 413)
        self.assertIn("error", json.loads(reply.text))

    def test_the_web_page_loads_and_calls_hearth_as_its_own_origin(self):
        page = httpx.get(f"{URL}/ui/", verify=CERT)
        self.assertEqual(page.status_code, 200)
        self.assertIn("default-src 'none'", page.headers["content-security-policy"])
        # A browser on https://hearth.test:PORT sends that name as Host and as its Origin;
        # nginx passes the name on, and hearth takes the page's requests as its own origin.
        port = URL.rsplit(":", 1)[1]
        headers = {"Host": f"hearth.test:{port}", "Authorization": f"Bearer {KEY}"}
        own = httpx.get(f"{URL}/api/tags", verify=CERT, headers={**headers, "Origin": f"https://hearth.test:{port}"})
        self.assertEqual(own.status_code, 200, own.text)
        other = httpx.get(f"{URL}/api/tags", verify=CERT, headers={**headers, "Origin": "https://evil.test"})
        self.assertEqual(other.status_code, 403, other.text)

    def test_the_proxy_s_request_id_reaches_hearth(self):
        reply = httpx.get(f"{URL}/api/version", verify=CERT)
        self.assertEqual(reply.status_code, 200)
        request_id = reply.headers["x-request-id"]
        self.assertRegex(request_id, r"^[0-9a-f]{32}$", "nginx's $request_id, returned by hearth")


if __name__ == "__main__":
    unittest.main(verbosity=2)
