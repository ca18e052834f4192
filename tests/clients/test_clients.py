"""Ollama's, OpenAI's (chat, completions, embeddings, responses) and Anthropic's official
Python clients against a real `hearth serve`.

Run by scripts/client-tests, which starts the server and sets HEARTH_URL, HEARTH_TEST_MODEL
and HEARTH_TEST_GGUF. Every call is one a user of those clients makes unchanged, only the
base URL pointed at hearth.
"""

import functools
import http.server
import json
import os
import threading
import unittest

import anthropic
import ollama
import openai

URL = os.environ["HEARTH_URL"]
MODEL = os.environ.get("HEARTH_TEST_MODEL", "smollm2")
GGUF = os.environ["HEARTH_TEST_GGUF"]

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
ANTHROPIC_WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city",
    "input_schema": WEATHER["function"]["parameters"],
}


class OpenAIClient(unittest.TestCase):
    def setUp(self):
        self.client = openai.OpenAI(base_url=f"{URL}/v1", api_key="unused", max_retries=0)

    def ask(self, **extra):
        return self.client.chat.completions.create(
            model=MODEL, messages=QUESTION, temperature=0, max_tokens=24, **extra
        )

    def test_chat_and_its_stream_give_the_same_answer(self):
        reply = self.ask(seed=1)
        choice = reply.choices[0]
        self.assertTrue(choice.message.content)
        self.assertIn(choice.finish_reason, ("stop", "length"))
        self.assertLessEqual(reply.usage.completion_tokens, 24)
        self.assertGreater(reply.usage.prompt_tokens, 10)
        stream = self.ask(seed=1, stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        self.assertEqual(text, choice.message.content)
        self.assertEqual(chunks[-1].usage.completion_tokens, reply.usage.completion_tokens)

    def test_completions(self):
        reply = self.client.completions.create(model=MODEL, prompt="The sky is", max_tokens=5, temperature=0)
        self.assertEqual(reply.usage.completion_tokens, 5)
        self.assertTrue(reply.choices[0].text)
        scored = self.client.completions.create(model=MODEL, prompt="The sky is", max_tokens=5, temperature=0, logprobs=2)
        self.assertEqual(len(scored.choices[0].logprobs.tokens), scored.usage.completion_tokens)

    def test_embeddings_decode_from_the_clients_base64(self):
        # The client asks for base64 and decodes it itself.
        reply = self.client.embeddings.create(model=MODEL, input=["The cat sat.", "Markets fell."])
        self.assertEqual(len(reply.data), 2)
        vector = reply.data[0].embedding
        self.assertEqual(len(vector), 576)
        self.assertAlmostEqual(sum(v * v for v in vector), 1.0, places=3)
        floats = self.client.embeddings.create(model=MODEL, input="The cat sat.", encoding_format="float")
        for a, b in zip(floats.data[0].embedding, vector):
            self.assertAlmostEqual(a, b, places=5)

    def test_json_schema_answers_parse_and_validate(self):
        reply = self.client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Describe a person as JSON."}],
            max_tokens=80,
            seed=3,
            response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}},
        )
        person = json.loads(reply.choices[0].message.content)
        self.assertIsInstance(person["name"], str)
        self.assertIsInstance(person["age"], int)

    def test_required_tool_call(self):
        reply = self.client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=[WEATHER],
            tool_choice="required",
            max_tokens=80,
            seed=1,
        )
        choice = reply.choices[0]
        self.assertEqual(choice.finish_reason, "tool_calls")
        call = choice.message.tool_calls[0]
        self.assertEqual(call.function.name, "get_weather")
        self.assertIsInstance(json.loads(call.function.arguments)["city"], str)
        follow_up = self.client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "user", "content": "What is the weather in Paris?"},
                choice.message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 18}'},
            ],
            tools=[WEATHER],
            max_tokens=40,
            seed=1,
        )
        message = follow_up.choices[0].message
        self.assertTrue(message.content is not None or message.tool_calls)

    def test_logprobs(self):
        reply = self.ask(logprobs=True, top_logprobs=2)
        tokens = reply.choices[0].logprobs.content
        self.assertEqual(len(tokens), reply.usage.completion_tokens)
        self.assertEqual("".join(t.token for t in tokens), reply.choices[0].message.content)
        self.assertTrue(all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in tokens))

    def test_models_and_errors(self):
        self.assertIn(f"{MODEL}:latest", [m.id for m in self.client.models.list()])
        with self.assertRaises(openai.NotFoundError):
            self.client.chat.completions.create(model="no-such-model", messages=QUESTION)
        with self.assertRaises(openai.BadRequestError):
            self.ask(n=2)


class OpenAIResponses(unittest.TestCase):
    """OpenAI's Responses API through the official client's `responses` resource."""

    TOOL = {
        "type": "function",
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": WEATHER["function"]["parameters"],
    }

    def setUp(self):
        self.client = openai.OpenAI(base_url=f"{URL}/v1", api_key="unused", max_retries=0)

    def ask(self, **extra):
        return self.client.responses.create(
            **{"model": MODEL, "input": QUESTION[0]["content"], "max_output_tokens": 24, "temperature": 0, **extra}
        )

    def test_create_and_stream_give_the_same_response(self):
        response = self.ask(instructions="Answer in one sentence.")
        self.assertEqual(response.object, "response")
        self.assertIn(response.status, ("completed", "incomplete"))
        self.assertTrue(response.id.startswith("resp_"))
        self.assertTrue(response.output_text)
        self.assertGreater(response.usage.input_tokens, 10)
        with self.client.responses.stream(
            model=MODEL, input=QUESTION[0]["content"], max_output_tokens=24, temperature=0,
            instructions="Answer in one sentence.",
        ) as stream:
            events = list(stream)
        # The last event carries the whole response, completed or (cut by the limit) incomplete,
        # as OpenAI's does; the helper's get_final_response() knows only the first.
        kinds = [event.type for event in events]
        final = events[-1].response
        self.assertEqual(kinds[:2], ["response.created", "response.in_progress"])
        self.assertEqual(kinds[-1], f"response.{response.status}")
        self.assertIn("response.output_text.delta", kinds)
        self.assertEqual(final.output_text, response.output_text)
        self.assertEqual(final.usage.output_tokens, response.usage.output_tokens)

    def test_token_limit_makes_an_incomplete_response(self):
        response = self.ask(max_output_tokens=3, input="Count from one to fifty in words.")
        self.assertEqual(response.status, "incomplete")
        self.assertEqual(response.incomplete_details.reason, "max_output_tokens")
        self.assertEqual(response.usage.output_tokens, 3)

    def test_function_call_round_trip_through_previous_response_id(self):
        question = "What is the weather in Paris?"
        # Greedy: a sampled call may wander past the limit.
        forced = {"tools": [self.TOOL], "tool_choice": "required", "parallel_tool_calls": False, "temperature": 0}
        first = self.client.responses.create(model=MODEL, input=question, max_output_tokens=200, **forced)
        call = [item for item in first.output if item.type == "function_call"][0]
        self.assertEqual(call.name, "get_weather")
        self.assertIsInstance(json.loads(call.arguments)["city"], str)
        with self.client.responses.stream(model=MODEL, input=question, max_output_tokens=200, **forced) as stream:
            streamed = stream.get_final_response()
        self.assertEqual([item.type for item in streamed.output], ["function_call"])
        follow_up = self.client.responses.create(
            model=MODEL,
            previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18 C, sunny"}],
            tools=[self.TOOL],
            max_output_tokens=40,
        )
        self.assertEqual(follow_up.previous_response_id, first.id)
        self.assertTrue(follow_up.output)
        # The first exchange is in the prompt: more tokens than the new item alone.
        self.assertGreater(follow_up.usage.input_tokens, first.usage.input_tokens)

    def test_json_schema_format_answers_parse(self):
        response = self.ask(
            input="Describe a person.",
            max_output_tokens=60,
            text={"format": {"type": "json_schema", "name": "person", "schema": PERSON, "strict": True}},
        )
        person = json.loads(response.output_text)
        self.assertIsInstance(person["name"], str)
        self.assertIsInstance(person["age"], int)

    def test_kept_responses_are_retrieved_and_deleted_and_unstored_ones_are_not_kept(self):
        response = self.ask(max_output_tokens=4)
        self.assertEqual(self.client.responses.retrieve(response.id).output_text, response.output_text)
        self.client.responses.delete(response.id)
        with self.assertRaises(openai.NotFoundError):
            self.client.responses.retrieve(response.id)
        unstored = self.ask(max_output_tokens=4, store=False)
        with self.assertRaises(openai.NotFoundError):
            self.client.responses.retrieve(unstored.id)
        with self.assertRaises(openai.NotFoundError):
            self.ask(previous_response_id=unstored.id)


class AnthropicClient(unittest.TestCase):
    def setUp(self):
        # The SDK sends the key as x-api-key and its anthropic-version header; hearth takes both.
        self.client = anthropic.Anthropic(base_url=URL, api_key="unused", max_retries=0)

    def ask(self, **extra):
        # The SDK's create() has no temperature (newer Claude models fix it); hearth takes it.
        return self.client.messages.create(
            **{"model": MODEL, "max_tokens": 24, "messages": QUESTION, "extra_body": {"temperature": 0}, **extra}
        )

    def test_create_and_stream_give_the_same_message(self):
        message = self.ask(system="Answer in one sentence.")
        self.assertEqual((message.type, message.role), ("message", "assistant"))
        self.assertTrue(message.id.startswith("msg_"))
        self.assertIn(message.stop_reason, ("end_turn", "max_tokens"))
        text = message.content[0].text
        self.assertTrue(text)
        self.assertGreater(message.usage.input_tokens + message.usage.cache_read_input_tokens, 10)
        self.assertLessEqual(message.usage.output_tokens, 24)
        with self.client.messages.stream(
            model=MODEL,
            max_tokens=24,
            messages=QUESTION,
            system="Answer in one sentence.",
            extra_body={"temperature": 0},
        ) as stream:
            streamed = "".join(stream.text_stream)
            final = stream.get_final_message()
        self.assertEqual(streamed, text)
        self.assertEqual(final.content[0].text, text)
        self.assertEqual(final.stop_reason, message.stop_reason)
        self.assertEqual(final.usage.output_tokens, message.usage.output_tokens)

    def test_stop_sequences_and_max_tokens_are_reported(self):
        short = self.ask(max_tokens=3)
        self.assertEqual((short.stop_reason, short.usage.output_tokens), ("max_tokens", 3))
        full = self.ask().content[0].text
        word = full.split()[1]
        stopped = self.ask(stop_sequences=["zzz", word])
        self.assertEqual((stopped.stop_reason, stopped.stop_sequence), ("stop_sequence", word))
        self.assertNotIn(word, stopped.content[0].text)

    def test_tool_use_round_trip_streamed_and_not(self):
        question = [{"role": "user", "content": "What is the weather in Paris?"}]
        # Greedy (temperature 0 through extra_body): a sampled call may wander past the limit.
        forced = {"tools": [ANTHROPIC_WEATHER], "tool_choice": {"type": "any", "disable_parallel_tool_use": True}}
        message = self.client.messages.create(
            model=MODEL, max_tokens=200, messages=question, extra_body={"temperature": 0}, **forced
        )
        self.assertEqual(message.stop_reason, "tool_use")
        use = [b for b in message.content if b.type == "tool_use"][0]
        self.assertEqual(use.name, "get_weather")
        self.assertIsInstance(use.input["city"], str)
        with self.client.messages.stream(
            model=MODEL, max_tokens=200, messages=question, extra_body={"temperature": 0}, **forced
        ) as stream:
            streamed = stream.get_final_message()
        self.assertEqual(streamed.stop_reason, "tool_use")
        self.assertIsInstance([b for b in streamed.content if b.type == "tool_use"][0].input["city"], str)
        follow_up = self.client.messages.create(
            model=MODEL,
            max_tokens=40,
            tools=[ANTHROPIC_WEATHER],
            messages=question
            + [
                {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18 C, sunny"}]},
            ],
        )
        self.assertIn(follow_up.stop_reason, ("end_turn", "max_tokens", "tool_use"))
        self.assertTrue(follow_up.content)

    def test_structured_output_follows_the_schema(self):
        message = self.ask(
            max_tokens=60,
            messages=[{"role": "user", "content": "Describe a person."}],
            output_config={"format": {"type": "json_schema", "schema": PERSON}},
        )
        person = json.loads(message.content[0].text)
        self.assertIsInstance(person["name"], str)
        self.assertIsInstance(person["age"], int)

    def test_count_tokens_matches_the_prompt_answered(self):
        counted = self.client.messages.count_tokens(model=MODEL, messages=QUESTION)
        message = self.ask(max_tokens=1)
        self.assertEqual(
            counted.input_tokens, message.usage.input_tokens + message.usage.cache_read_input_tokens
        )

    def test_errors_in_anthropic_s_shape(self):
        with self.assertRaises(anthropic.NotFoundError) as caught:
            self.client.messages.create(model="no-such-model", max_tokens=5, messages=QUESTION)
        self.assertEqual(caught.exception.body["type"], "error")
        self.assertEqual(caught.exception.body["error"]["type"], "not_found_error")
        with self.assertRaises(anthropic.BadRequestError) as caught:
            self.ask(
                messages=[{"role": "user", "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                ]}]
            )
        self.assertIn("image", caught.exception.body["error"]["message"])


class OllamaClient(unittest.TestCase):
    def setUp(self):
        self.client = ollama.Client(host=URL)

    def test_chat_generate_and_their_streams(self):
        options = {"temperature": 0, "num_predict": 24}
        reply = self.client.chat(model=MODEL, messages=QUESTION, options=options)
        self.assertTrue(reply.message.content)
        self.assertTrue(reply.done)
        self.assertGreater(reply.eval_count, 0)
        self.assertGreater(reply.total_duration, reply.eval_duration)
        streamed = "".join(c.message.content for c in self.client.chat(model=MODEL, messages=QUESTION, options=options, stream=True))
        self.assertEqual(streamed, reply.message.content)
        generated = self.client.generate(model=MODEL, prompt="Say hi.", options=options)
        self.assertTrue(generated.response)
        self.assertIn(generated.done_reason, ("stop", "length"))

    def test_embed_and_the_older_embeddings(self):
        reply = self.client.embed(model=MODEL, input=["The cat sat.", "Markets fell."])
        self.assertEqual(len(reply.embeddings), 2)
        self.assertEqual(len(reply.embeddings[0]), 576)
        legacy = self.client.embeddings(model=MODEL, prompt="The cat sat.")
        self.assertEqual(len(legacy.embedding), 576)

    def test_format_schema(self):
        reply = self.client.chat(
            model=MODEL,
            messages=[{"role": "user", "content": "Describe a person as JSON."}],
            format=PERSON,
            options={"seed": 3, "num_predict": 80},
        )
        person = json.loads(reply.message.content)
        self.assertIsInstance(person["age"], int)

    def test_tools(self):
        reply = self.client.chat(
            model=MODEL,
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=[WEATHER],
            options={"seed": 2, "num_predict": 80},
        )
        calls = reply.message.tool_calls or []
        for call in calls:
            self.assertEqual(call.function.name, "get_weather")
            self.assertIsInstance(call.function.arguments, dict)
        if not calls:
            self.assertFalse(reply.message.content.startswith("{"), reply.message.content)

    def test_model_management(self):
        names = [m.model for m in self.client.list().models]
        self.assertIn(f"{MODEL}:latest", names)
        shown = self.client.show(MODEL)
        self.assertEqual(shown.modelinfo["general.architecture"], "llama")
        self.client.create(model="pirate", from_=MODEL, system="You are a pirate.")
        self.assertIn('SYSTEM """You are a pirate."""', self.client.show("pirate").modelfile)
        self.client.copy("pirate", "pirate2")
        self.client.delete("pirate2")
        self.client.delete("pirate")
        self.assertNotIn("pirate:latest", [m.model for m in self.client.list().models])
        self.client.generate(model=MODEL, prompt="Hi", options={"num_predict": 1})
        self.assertIn(f"{MODEL}:latest", [m.model for m in self.client.ps().models])
        with self.assertRaises(ollama.ResponseError) as caught:
            self.client.chat(model="no-such-model", messages=QUESTION)
        self.assertEqual(caught.exception.status_code, 404)

    def test_pull_streams_progress(self):
        directory, name = os.path.split(GGUF)
        class QuietHandler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

        handler = functools.partial(QuietHandler, directory=directory)
        class QuietServer(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # hearth closes probe connections early; that is not an error here

        with QuietServer(("127.0.0.1", 0), handler) as server:
            threading.Thread(target=server.serve_forever, daemon=True).start()
            url = f"http://127.0.0.1:{server.server_address[1]}/{name}"
            updates = list(self.client.pull(url, stream=True))
            server.shutdown()
        self.assertEqual(updates[-1].status, "success")
        self.assertTrue(any(u.completed for u in updates), [u.status for u in updates])


if __name__ == "__main__":
    unittest.main(verbosity=2)
