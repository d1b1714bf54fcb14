// Drives a running `slm serve` with the official OpenAI Node client, as real users would.
// Environment: SLM_BASE_URL (e.g. http://127.0.0.1:8080/v1), SLM_MODEL (a served model name),
// SLM_API_KEY (the server's key; empty when the server runs without one).
// Prints one "ok N - name" line per check; stops at the first failure with "not ok N - name"
// and the reason, and exits 1. run.sh starts the server and calls this.
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.SLM_BASE_URL;
const model = process.env.SLM_MODEL;
const apiKey = process.env.SLM_API_KEY ?? '';
if (!baseURL || !model) {
  console.error('client_test.mjs: set SLM_BASE_URL (e.g. http://127.0.0.1:8080/v1) and SLM_MODEL');
  process.exit(2);
}

// No retries: a failing request must fail the test at once, not be hidden by a retry.
// The client refuses an empty key, so a keyless server gets a placeholder it will ignore.
const clientOptions = { baseURL, maxRetries: 0, timeout: 120_000 };
const client = new OpenAI({ ...clientOptions, apiKey: apiKey || 'no-key' });

const chatRequest = {
  model,
  messages: [{ role: 'user', content: 'Say hello.' }],
  max_tokens: 8,
  temperature: 0,
};

function checkUsage(usage, maxCompletion) {
  assert.ok(usage, 'usage is missing');
  assert.ok(Number.isInteger(usage.prompt_tokens) && usage.prompt_tokens > 0,
    `usage.prompt_tokens = ${usage.prompt_tokens}, expected a positive integer`);
  assert.ok(Number.isInteger(usage.completion_tokens) &&
    usage.completion_tokens >= 1 && usage.completion_tokens <= maxCompletion,
    `usage.completion_tokens = ${usage.completion_tokens}, expected 1..${maxCompletion}`);
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens,
    'usage.total_tokens != prompt_tokens + completion_tokens');
}

function checkFinishReason(reason, usage, maxTokens) {
  assert.ok(['length', 'stop'].includes(reason), `finish_reason = ${JSON.stringify(reason)}`);
  if (reason === 'length') {
    assert.equal(usage.completion_tokens, maxTokens,
      'finish_reason "length" but fewer than max_tokens tokens were generated');
  }
}

function l2norm(v) {
  return Math.sqrt(v.reduce((s, x) => s + x * x, 0));
}

let nonStreamingChat;  // test 1's response, which test 2 must reproduce

const tests = [
  ['chat completion, non-streaming', async () => {
    const r = await client.chat.completions.create(chatRequest);
    assert.equal(typeof r.id, 'string');
    assert.ok(r.id.length > 0, 'id is empty');
    assert.equal(r.object, 'chat.completion');
    assert.ok(Number.isInteger(r.created) && r.created > 1_600_000_000,
      `created = ${r.created}, expected Unix seconds`);
    assert.equal(r.model, model);
    assert.equal(r.choices.length, 1);
    const choice = r.choices[0];
    assert.equal(choice.index, 0);
    assert.equal(choice.message.role, 'assistant');
    assert.equal(typeof choice.message.content, 'string');
    checkUsage(r.usage, 8);
    checkFinishReason(choice.finish_reason, r.usage, 8);
    nonStreamingChat = r;
  }],

  ['chat completion, streaming matches non-streaming', async () => {
    assert.ok(nonStreamingChat, 'needs test 1');
    const stream = await client.chat.completions.create({
      ...chatRequest, stream: true, stream_options: { include_usage: true },
    });
    let text = '';
    let sawRole = false;
    const finishReasons = [];
    const ids = new Set();
    let last;
    let chunks = 0;
    for await (const chunk of stream) {
      ++chunks;
      assert.equal(chunk.object, 'chat.completion.chunk');
      ids.add(chunk.id);
      for (const choice of chunk.choices) {
        if (choice.delta?.role !== undefined) {
          assert.equal(choice.delta.role, 'assistant');
          sawRole = true;
        }
        if (typeof choice.delta?.content === 'string') text += choice.delta.content;
        if (choice.finish_reason) finishReasons.push(choice.finish_reason);
      }
      last = chunk;
    }
    assert.ok(chunks >= 2, `only ${chunks} chunk(s)`);
    assert.ok(sawRole, 'no chunk carries delta.role "assistant"');
    assert.equal(ids.size, 1, `chunks carry different ids: ${[...ids].join(', ')}`);
    assert.equal(finishReasons.length, 1,
      `expected exactly one chunk with finish_reason, got [${finishReasons.join(', ')}]`);
    assert.ok(last.usage, 'the last chunk has no usage (stream_options.include_usage)');
    checkUsage(last.usage, 8);
    checkFinishReason(finishReasons[0], last.usage, 8);
    // Greedy decoding is deterministic: the stream must say exactly what the plain reply said.
    assert.equal(text, nonStreamingChat.choices[0].message.content,
      'streamed text differs from the non-streaming reply at temperature 0');
    assert.equal(finishReasons[0], nonStreamingChat.choices[0].finish_reason);
    for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) {
      assert.equal(last.usage[k], nonStreamingChat.usage[k], `streamed usage.${k}`);
    }
  }],

  ['legacy completion with logprobs', async () => {
    const r = await client.completions.create({
      model, prompt: 'Once upon a time', max_tokens: 5, logprobs: 2, temperature: 0,
    });
    assert.equal(r.object, 'text_completion');
    assert.equal(r.model, model);
    assert.equal(r.choices.length, 1);
    const choice = r.choices[0];
    assert.equal(typeof choice.text, 'string');
    checkUsage(r.usage, 5);
    checkFinishReason(choice.finish_reason, r.usage, 5);
    const lp = choice.logprobs;
    assert.ok(lp, 'choices[0].logprobs is missing although logprobs: 2 was asked');
    assert.ok(Array.isArray(lp.tokens), 'logprobs.tokens is not an array');
    assert.equal(lp.tokens.length, r.usage.completion_tokens,
      'logprobs.tokens has not one entry per completion token');
    assert.equal(lp.token_logprobs.length, lp.tokens.length, 'token_logprobs length');
    for (const x of lp.token_logprobs) {
      assert.ok(Number.isFinite(x) && x <= 0, `token logprob ${x} is not a finite log-probability`);
    }
    if (lp.top_logprobs) {
      assert.equal(lp.top_logprobs.length, lp.tokens.length, 'top_logprobs length');
    }
  }],

  ['embeddings, default (base64) and float encodings', async () => {
    const input = ['hello world', 'the cat'];
    // Without encoding_format this client asks for base64 and decodes float32 itself.
    const r = await client.embeddings.create({ model, input });
    const f = await client.embeddings.create({ model, input, encoding_format: 'float' });
    for (const [encoding, res] of [['default (base64)', r], ['float', f]]) {
      assert.equal(res.data.length, 2, `${encoding}: data length`);
      res.data.forEach((d, i) => {
        assert.equal(d.index, i, `${encoding}: data[${i}].index`);
        assert.ok(d.embedding.length > 0, `${encoding}: embedding ${i} is empty`);
        assert.ok(d.embedding.every(Number.isFinite),
          `${encoding}: embedding ${i} has a non-finite value`);
        const norm = l2norm(d.embedding);
        assert.ok(Math.abs(norm - 1) < 1e-3,
          `${encoding}: embedding ${i} has L2 norm ${norm}, expected 1` +
          (encoding === 'float' ? '' : ' (the client sent encoding_format "base64" and decodes' +
            ' the reply as base64 little-endian float32)'));
      });
      assert.equal(res.data[0].embedding.length, res.data[1].embedding.length,
        `${encoding}: embeddings differ in length`);
    }
    assert.ok(r.data[0].embedding.some((x, j) => Math.abs(x - r.data[1].embedding[j]) > 1e-6),
      'two different inputs gave the same embedding');
    for (let i = 0; i < 2; ++i) {
      const a = r.data[i].embedding;
      const b = f.data[i].embedding;
      assert.equal(a.length, b.length, 'base64 and float embeddings differ in length');
      const worst = Math.max(...a.map((x, j) => Math.abs(x - b[j])));
      assert.ok(worst < 1e-5, `base64 and float embeddings ${i} differ by ${worst}`);
    }
  }],

  ['models list contains the served model', async () => {
    const page = await client.models.list();
    const ids = page.data.map((m) => m.id);
    assert.ok(ids.includes(model), `models.list() = [${ids.join(', ')}] lacks ${model}`);
  }],

  ['errors: unknown model, wrong API key', async () => {
    let err;
    try {
      await client.chat.completions.create({ ...chatRequest, model: 'no-such-model' });
    } catch (e) {
      err = e;
    }
    assert.ok(err, 'a request for model "no-such-model" succeeded');
    assert.ok(err instanceof OpenAI.APIError, `expected an APIError, got ${err}`);
    assert.ok([400, 404].includes(err.status), `status ${err.status}, expected 404 (or 400)`);
    assert.equal(typeof err.error?.message, 'string', 'the error body has no error.message');
    assert.ok(err.error.message.length > 0, 'error.message is empty');

    if (!apiKey) {
      console.log('# no SLM_API_KEY: wrong-key check skipped');
      return;
    }
    const intruder = new OpenAI({ ...clientOptions, apiKey: `wrong-${apiKey}` });
    err = undefined;
    try {
      await intruder.chat.completions.create(chatRequest);
    } catch (e) {
      err = e;
    }
    assert.ok(err, 'a request with a wrong API key succeeded');
    assert.ok(err instanceof OpenAI.AuthenticationError,
      `expected AuthenticationError (401), got ${err?.status ?? ''} ${err}`);
    assert.equal(err.status, 401);
  }],
];

console.log(`1..${tests.length}`);
for (const [i, [name, run]] of tests.entries()) {
  try {
    await run();
  } catch (e) {
    console.log(`not ok ${i + 1} - ${name}`);
    console.error(`  ${e?.stack ?? e}`);
    process.exit(1);
  }
  console.log(`ok ${i + 1} - ${name}`);
}
