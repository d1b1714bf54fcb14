// The OpenAI request layer of `slm serve`: valid requests parse to the hand-written structs with
// OpenAI's defaults; every wrong type, out-of-range value and unsupported feature is a 400 whose
// param names the field and whose message says what was expected.
#include "serve/api_request.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <string>

namespace slm {
namespace {

using json = nlohmann::json;

json chat_body() { return {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}}; }
json completion_body() { return {{"model", "m"}, {"prompt", "hi"}}; }
json embedding_body() { return {{"model", "m"}, {"input", "hi"}}; }

json with(json body, const std::string& key, json value) {
  body[key] = std::move(value);
  return body;
}

// Success when `f` throws an ApiError with status 400, type invalid_request_error, this param and
// a message containing `fragment`.
::testing::AssertionResult fails_with(const std::function<void()>& f, const std::string& param,
                                      const std::string& fragment) {
  try {
    f();
  } catch (const ApiError& e) {
    if (e.status != 400) return ::testing::AssertionFailure() << "status " << e.status;
    if (e.type != "invalid_request_error")
      return ::testing::AssertionFailure() << "type " << e.type;
    if (e.param != param)
      return ::testing::AssertionFailure() << "param '" << e.param << "', want '" << param
                                           << "' (message: " << e.message << ")";
    if (e.message.find(fragment) == std::string::npos)
      return ::testing::AssertionFailure() << "message '" << e.message << "' lacks '" << fragment
                                           << "'";
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "other exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "no error";
}

::testing::AssertionResult chat_fails(const json& body, const std::string& param,
                                      const std::string& fragment) {
  return fails_with([&] { parse_completion_request(body, true); }, param, fragment);
}
::testing::AssertionResult completion_fails(const json& body, const std::string& param,
                                            const std::string& fragment) {
  return fails_with([&] { parse_completion_request(body, false); }, param, fragment);
}
::testing::AssertionResult embedding_fails(const json& body, const std::string& param,
                                           const std::string& fragment) {
  return fails_with([&] { parse_embedding_request(body); }, param, fragment);
}

CompletionRequest chat(const json& body) { return parse_completion_request(body, true); }
CompletionRequest completion(const json& body) { return parse_completion_request(body, false); }

// ---- error body --------------------------------------------------------------------------------

TEST(ApiErrorTest, BodyHasOpenAIShapeWithNullsForEmptyFields) {
  const ApiError e(400, "'temperature' must be a number", "temperature");
  EXPECT_STREQ(e.what(), "'temperature' must be a number");
  const json want = json::parse(R"({"error": {"message": "'temperature' must be a number",
      "type": "invalid_request_error", "param": "temperature", "code": null}})");
  EXPECT_EQ(api_error_body(e), want);

  const ApiError none(500, "boom", "", "server_error");
  EXPECT_EQ(none.status, 500);
  EXPECT_EQ(api_error_body(none), json::parse(R"({"error": {"message": "boom",
      "type": "server_error", "param": null, "code": null}})"));

  const ApiError nf(404, "no model x", "model", "not_found_error", "model_not_found");
  EXPECT_EQ(api_error_body(nf), json::parse(R"({"error": {"message": "no model x",
      "type": "not_found_error", "param": "model", "code": "model_not_found"}})"));
}

TEST(ApiErrorTest, BodyMustBeAnObject) {
  for (const json& body : {json::array(), json("text"), json(nullptr), json(3)}) {
    EXPECT_TRUE(chat_fails(body, "", "request body must be a JSON object")) << body;
    EXPECT_TRUE(completion_fails(body, "", "request body must be a JSON object")) << body;
    EXPECT_TRUE(embedding_fails(body, "", "request body must be a JSON object")) << body;
  }
}

// ---- minimal requests and defaults -------------------------------------------------------------

TEST(CompletionRequestTest, MinimalChatHasOpenAIDefaults) {
  const CompletionRequest r = chat(chat_body());
  EXPECT_TRUE(r.chat);
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].role, "user");
  EXPECT_EQ(r.messages[0].content, "hi");
  EXPECT_TRUE(r.prompt.empty());
  EXPECT_FALSE(r.prompt_is_tokens);
  EXPECT_FALSE(r.max_tokens.has_value());
  EXPECT_EQ(r.sampler.temperature, 1.0f);
  EXPECT_EQ(r.sampler.top_k, 0);
  EXPECT_EQ(r.sampler.top_p, 1.0f);
  EXPECT_EQ(r.sampler.min_p, 0.0f);
  EXPECT_EQ(r.sampler.repeat_penalty, 1.0f);
  EXPECT_EQ(r.sampler.repeat_last_n, -1);
  EXPECT_EQ(r.sampler.frequency_penalty, 0.0f);
  EXPECT_EQ(r.sampler.presence_penalty, 0.0f);
  EXPECT_FALSE(r.seed_given);
  EXPECT_TRUE(r.stop.empty());
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.include_usage);
  EXPECT_FALSE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 0);
  EXPECT_FALSE(r.ignore_eos);
  EXPECT_EQ(r.user, "");
  EXPECT_NO_THROW(r.sampler.validate());
}

TEST(CompletionRequestTest, MinimalCompletion) {
  const CompletionRequest r = completion(completion_body());
  EXPECT_FALSE(r.chat);
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.prompt, "hi");
  EXPECT_FALSE(r.prompt_is_tokens);
  EXPECT_TRUE(r.prompt_tokens.empty());
  EXPECT_TRUE(r.messages.empty());
  EXPECT_EQ(r.sampler.temperature, 1.0f);
  EXPECT_EQ(r.sampler.repeat_last_n, -1);
  EXPECT_FALSE(r.logprobs);
  EXPECT_FALSE(r.max_tokens.has_value());
}

TEST(CompletionRequestTest, NullMeansAbsent) {
  json body = chat_body();
  for (const char* key :
       {"temperature", "top_p", "top_k", "min_p", "repeat_penalty", "frequency_penalty",
        "presence_penalty", "seed", "max_tokens", "max_completion_tokens", "stop", "stream",
        "stream_options", "logprobs", "top_logprobs", "ignore_eos", "user", "n", "best_of", "echo",
        "suffix", "logit_bias", "tools", "tool_choice", "functions", "response_format"})
    body[key] = nullptr;
  const CompletionRequest r = chat(body);
  EXPECT_EQ(r.sampler.temperature, 1.0f);
  EXPECT_EQ(r.sampler.top_p, 1.0f);
  EXPECT_FALSE(r.seed_given);
  EXPECT_FALSE(r.max_tokens.has_value());
  EXPECT_TRUE(r.stop.empty());
  EXPECT_FALSE(r.logprobs);
}

TEST(CompletionRequestTest, UnknownFieldsAreIgnored) {
  json body = with(chat_body(), "metadata", {{"a", 1}});
  body["store"] = true;
  body["something_new"] = json::array({1, 2});
  EXPECT_NO_THROW(chat(body));
  // Fields of the other endpoint are unknown here: "messages" in a completion, "prompt" in chat.
  EXPECT_NO_THROW(completion(with(completion_body(), "messages", 5)));
  EXPECT_NO_THROW(chat(with(chat_body(), "prompt", 5)));
  EXPECT_NO_THROW(completion(with(completion_body(), "max_completion_tokens", "x")));
}

// ---- model -------------------------------------------------------------------------------------

TEST(CompletionRequestTest, ModelIsARequiredNonEmptyString) {
  json body = chat_body();
  body.erase("model");
  EXPECT_TRUE(chat_fails(body, "model", "'model' is required"));
  EXPECT_TRUE(chat_fails(with(chat_body(), "model", nullptr), "model", "'model' is required"));
  EXPECT_TRUE(chat_fails(with(chat_body(), "model", ""), "model", "must not be empty"));
  EXPECT_TRUE(completion_fails(with(completion_body(), "model", 7), "model",
                               "'model' must be a string"));
}

// ---- prompt ------------------------------------------------------------------------------------

TEST(CompletionRequestTest, PromptForms) {
  CompletionRequest r = completion(with(completion_body(), "prompt", json::array({"one"})));
  EXPECT_EQ(r.prompt, "one");
  EXPECT_FALSE(r.prompt_is_tokens);

  r = completion(with(completion_body(), "prompt", ""));
  EXPECT_EQ(r.prompt, "");
  EXPECT_FALSE(r.prompt_is_tokens);

  r = completion(with(completion_body(), "prompt", json::array({1, 0, 2147483647})));
  EXPECT_TRUE(r.prompt_is_tokens);
  EXPECT_EQ(r.prompt, "");
  EXPECT_EQ(r.prompt_tokens, (std::vector<int32_t>{1, 0, 2147483647}));

  r = completion(with(completion_body(), "prompt", json::parse("[[5, 6]]")));
  EXPECT_TRUE(r.prompt_is_tokens);
  EXPECT_EQ(r.prompt_tokens, (std::vector<int32_t>{5, 6}));
}

TEST(CompletionRequestTest, PromptErrors) {
  json body = completion_body();
  body.erase("prompt");
  EXPECT_TRUE(completion_fails(body, "prompt", "'prompt' is required"));
  EXPECT_TRUE(completion_fails(with(completion_body(), "prompt", 3), "prompt", "must be"));
  EXPECT_TRUE(completion_fails(with(completion_body(), "prompt", json::array()), "prompt",
                               "must not be an empty array"));
  EXPECT_TRUE(completion_fails(with(completion_body(), "prompt", json::array({"a", "b"})),
                               "prompt", "batched prompts"));
  EXPECT_TRUE(completion_fails(with(completion_body(), "prompt", json::parse("[[1], [2]]")),
                               "prompt", "batched prompts"));
  EXPECT_TRUE(completion_fails(with(completion_body(), "prompt", json::array({1, -1})),
                               "prompt[1]", ">= 0, got -1"));
  EXPECT_TRUE(completion_fails(with(completion_body(), "prompt", json::array({2147483648LL})),
                               "prompt[0]", ">= 0, got 2147483648"));
  EXPECT_TRUE(completion_fails(with(completion_body(), "prompt", json::array({1, 1.5})),
                               "prompt[1]", "must be a token id"));
  EXPECT_TRUE(completion_fails(with(completion_body(), "prompt", json::array({1, "a"})),
                               "prompt[1]", "must be a token id"));
  EXPECT_TRUE(completion_fails(with(completion_body(), "prompt", json::parse("[[]]")),
                               "prompt[0]", "must not be an empty array"));
  EXPECT_TRUE(completion_fails(with(completion_body(), "prompt", json::array({true})), "prompt",
                               "must be a string"));
}

// ---- messages ----------------------------------------------------------------------------------

TEST(CompletionRequestTest, MessagesRolesAndContentParts) {
  const json body = with(chat_body(), "messages", json::parse(R"([
      {"role": "developer", "content": "be brief"},
      {"role": "system", "content": "sys", "name": "ignored"},
      {"role": "user", "content": [{"type": "text", "text": "Hello, "},
                                   {"type": "text", "text": "world"}]},
      {"role": "assistant", "content": "ok", "tool_calls": []}])"));
  const CompletionRequest r = chat(body);
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[0].content, "be brief");
  EXPECT_EQ(r.messages[1].role, "system");
  EXPECT_EQ(r.messages[2].role, "user");
  EXPECT_EQ(r.messages[2].content, "Hello, world");
  EXPECT_EQ(r.messages[3].role, "assistant");
  EXPECT_EQ(r.messages[3].content, "ok");
}

TEST(CompletionRequestTest, MessageErrors) {
  const json user = {{"role", "user"}, {"content", "hi"}};
  auto msgs = [&](json third) { return with(chat_body(), "messages", {user, user, third}); };
  json body = chat_body();
  body.erase("messages");
  EXPECT_TRUE(chat_fails(body, "messages", "'messages' is required"));
  EXPECT_TRUE(chat_fails(with(chat_body(), "messages", "hi"), "messages",
                         "'messages' must be an array"));
  EXPECT_TRUE(chat_fails(with(chat_body(), "messages", json::array()), "messages",
                         "at least one"));
  EXPECT_TRUE(chat_fails(msgs("hi"), "messages[2]", "'messages[2]' must be an object"));
  EXPECT_TRUE(chat_fails(msgs({{"content", "x"}}), "messages[2].role", "is required"));
  EXPECT_TRUE(chat_fails(msgs({{"role", 1}, {"content", "x"}}), "messages[2].role",
                         "must be a string"));
  EXPECT_TRUE(chat_fails(msgs({{"role", "tool"}, {"content", "x"}, {"tool_call_id", "c"}}),
                         "messages[2].role", "role 'tool' are not supported"));
  EXPECT_TRUE(chat_fails(msgs({{"role", "function"}, {"content", "x"}}), "messages[2].role",
                         "not supported"));
  EXPECT_TRUE(chat_fails(msgs({{"role", "robot"}, {"content", "x"}}), "messages[2].role",
                         "must be one of"));
  EXPECT_TRUE(chat_fails(msgs({{"role", "user"}}), "messages[2].content", "is required"));
  EXPECT_TRUE(chat_fails(msgs({{"role", "assistant"}, {"content", nullptr}}),
                         "messages[2].content", "is required"));
  EXPECT_TRUE(chat_fails(msgs({{"role", "user"}, {"content", 5}}), "messages[2].content",
                         "must be a string or an array"));
  EXPECT_TRUE(chat_fails(msgs({{"role", "user"}, {"content", json::array()}}),
                         "messages[2].content", "must not be an empty array"));
  EXPECT_TRUE(chat_fails(msgs(json::parse(R"({"role": "assistant", "content": "x",
                                              "tool_calls": [{"id": "c"}]})")),
                         "messages[2].tool_calls", "not supported"));
}

TEST(CompletionRequestTest, ContentPartErrors) {
  auto parts = [](json p) {
    return with(chat_body(), "messages", {{{"role", "user"}, {"content", std::move(p)}}});
  };
  const json text = {{"type", "text"}, {"text", "a"}};
  EXPECT_TRUE(chat_fails(parts({text, {{"type", "image_url"}, {"image_url", {{"url", "x"}}}}}),
                         "messages[0].content[1].type", "'image_url' are not supported"));
  EXPECT_TRUE(chat_fails(parts({text, "plain"}), "messages[0].content[1]", "must be an object"));
  EXPECT_TRUE(chat_fails(parts({{{"text", "a"}}}), "messages[0].content[0].type", "is required"));
  EXPECT_TRUE(chat_fails(parts({{{"type", "text"}}}), "messages[0].content[0].text",
                         "is required"));
  EXPECT_TRUE(chat_fails(parts({{{"type", "text"}, {"text", 3}}}), "messages[0].content[0].text",
                         "must be a string"));
}

TEST(CompletionRequestTest, MessageCountLimit) {
  const json user = {{"role", "user"}, {"content", "x"}};
  json many = json::array();
  for (int i = 0; i < 4096; ++i) many.push_back(user);
  EXPECT_EQ(chat(with(chat_body(), "messages", many)).messages.size(), 4096u);
  many.push_back(user);
  EXPECT_TRUE(chat_fails(with(chat_body(), "messages", many), "messages",
                         "at most 4096 messages, got 4097"));
}

// ---- sampler -----------------------------------------------------------------------------------

TEST(CompletionRequestTest, SamplerFieldsAreRead) {
  const json body = json::parse(R"({"model": "m", "prompt": "p", "temperature": 0.5,
      "top_p": 0.9, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.1,
      "frequency_penalty": -1.5, "presence_penalty": 2, "seed": 42})");
  const CompletionRequest r = completion(body);
  EXPECT_EQ(r.sampler.temperature, 0.5f);
  EXPECT_EQ(r.sampler.top_p, 0.9f);
  EXPECT_EQ(r.sampler.top_k, 40);
  EXPECT_EQ(r.sampler.min_p, 0.05f);
  EXPECT_EQ(r.sampler.repeat_penalty, 1.1f);
  EXPECT_EQ(r.sampler.repeat_last_n, -1);
  EXPECT_EQ(r.sampler.frequency_penalty, -1.5f);
  EXPECT_EQ(r.sampler.presence_penalty, 2.0f);
  EXPECT_TRUE(r.seed_given);
  EXPECT_EQ(r.sampler.seed, 42u);
  EXPECT_NO_THROW(r.sampler.validate());
}

TEST(CompletionRequestTest, SeedTakesAnyInteger) {
  CompletionRequest r = chat(with(chat_body(), "seed", -1));
  EXPECT_TRUE(r.seed_given);
  EXPECT_EQ(r.sampler.seed, std::numeric_limits<uint64_t>::max());
  r = chat(with(chat_body(), "seed", std::numeric_limits<int64_t>::min()));
  EXPECT_EQ(r.sampler.seed, uint64_t{1} << 63);
  r = chat(with(chat_body(), "seed", std::numeric_limits<uint64_t>::max()));
  EXPECT_EQ(r.sampler.seed, std::numeric_limits<uint64_t>::max());
  r = chat(with(chat_body(), "seed", 0));
  EXPECT_TRUE(r.seed_given);
  EXPECT_EQ(r.sampler.seed, 0u);
}

TEST(CompletionRequestTest, RangeBoundsAreAccepted) {
  const json edges = json::parse(R"([
      ["temperature", 0], ["temperature", 2], ["top_p", 1], ["top_p", 1e-9], ["top_k", 0],
      ["min_p", 0], ["min_p", 1], ["frequency_penalty", -2], ["frequency_penalty", 2],
      ["presence_penalty", -2], ["presence_penalty", 2], ["repeat_penalty", 1e-6],
      ["max_tokens", 1], ["max_tokens", 2147483647], ["max_completion_tokens", 1]])");
  for (const json& e : edges)
    EXPECT_NO_THROW(chat(with(chat_body(), e[0], e[1]))) << e;
  EXPECT_EQ(chat(with(chat_body(), "temperature", 0)).sampler.temperature, 0.0f);
  EXPECT_EQ(*chat(with(chat_body(), "max_tokens", 2147483647)).max_tokens, 2147483647);
}

TEST(CompletionRequestTest, RangeErrorsNameTheRange) {
  struct Case {
    const char* key;
    json value;
    const char* fragment;
  };
  const Case cases[] = {
      {"temperature", -0.1, "'temperature' must be in [0, 2], got -0.1"},
      {"temperature", 2.5, "'temperature' must be in [0, 2], got 2.5"},
      {"top_p", 0, "'top_p' must be in (0, 1], got 0"},
      {"top_p", 1.01, "'top_p' must be in (0, 1]"},
      {"top_k", -1, "'top_k' must be >= 0, got -1"},
      {"min_p", -0.5, "'min_p' must be in [0, 1]"},
      {"min_p", 1.5, "'min_p' must be in [0, 1], got 1.5"},
      {"repeat_penalty", 0, "'repeat_penalty' must be > 0, got 0"},
      {"repeat_penalty", -1, "'repeat_penalty' must be > 0"},
      {"frequency_penalty", -2.5, "'frequency_penalty' must be in [-2, 2], got -2.5"},
      {"frequency_penalty", 3, "'frequency_penalty' must be in [-2, 2]"},
      {"presence_penalty", 2.01, "'presence_penalty' must be in [-2, 2]"},
      {"max_tokens", 0, "'max_tokens' must be >= 1, got 0"},
      {"max_tokens", -5, "'max_tokens' must be >= 1"},
      {"max_tokens", 2147483648LL, "'max_tokens' must be >= 1, got 2147483648"},
      {"max_tokens", std::numeric_limits<uint64_t>::max(), "'max_tokens' must be >= 1"},
      {"max_completion_tokens", 0, "'max_completion_tokens' must be >= 1"},
  };
  for (const Case& c : cases)
    EXPECT_TRUE(chat_fails(with(chat_body(), c.key, c.value), c.key, c.fragment))
        << c.key << " " << c.value;
}

TEST(CompletionRequestTest, TypeErrorsNameTheFieldAndType) {
  struct Case {
    const char* key;
    json value;
    const char* expected;
  };
  const Case cases[] = {
      {"temperature", "hot", "a number"},   {"temperature", true, "a number"},
      {"top_p", "x", "a number"},           {"top_k", 1.5, "an integer"},
      {"top_k", 2.0, "an integer"},         {"top_k", "3", "an integer"},
      {"min_p", false, "a number"},         {"repeat_penalty", "1", "a number"},
      {"frequency_penalty", json::array(), "a number"},
      {"presence_penalty", json::object(), "a number"},
      {"seed", "1", "an integer"},          {"seed", 1.5, "an integer"},
      {"seed", true, "an integer"},         {"max_tokens", "10", "an integer"},
      {"max_tokens", 10.0, "an integer"},   {"max_completion_tokens", "5", "an integer"},
      {"stream", "true", "a boolean"},      {"stream", 1, "a boolean"},
      {"ignore_eos", 1, "a boolean"},       {"user", 5, "a string"},
      {"stop", 5, "a string or an array of strings"},
      {"logprobs", 1, "a boolean"},         {"top_logprobs", "2", "an integer"},
      {"n", "1", "an integer"},             {"best_of", 1.0, "an integer"},
      {"echo", "no", "a boolean"},          {"suffix", 5, "a string"},
      {"logit_bias", json::array(), "an object"},
      {"tools", json::object(), "an array"}, {"functions", "f", "an array"},
      {"tool_choice", 5, "a string or an object"},
      {"response_format", "json", "an object"},
  };
  for (const Case& c : cases) {
    const std::string fragment = std::string("'") + c.key + "' must be " + c.expected;
    EXPECT_TRUE(chat_fails(with(chat_body(), c.key, c.value), c.key, fragment))
        << c.key << " " << c.value;
  }
  // Nested fields name their path.
  EXPECT_TRUE(chat_fails(with(chat_body(), "stop", json::array({"a", 1})), "stop[1]",
                         "'stop[1]' must be a string"));
  json body = with(chat_body(), "stream", true);
  EXPECT_TRUE(chat_fails(with(body, "stream_options", 1), "stream_options",
                         "'stream_options' must be an object"));
  EXPECT_TRUE(chat_fails(with(body, "stream_options", {{"include_usage", "yes"}}),
                         "stream_options.include_usage",
                         "'stream_options.include_usage' must be a boolean"));
  EXPECT_TRUE(chat_fails(with(chat_body(), "response_format", {{"type", 5}}),
                         "response_format.type", "'response_format.type' must be a string"));
  // Completions: logprobs is an integer.
  EXPECT_TRUE(completion_fails(with(completion_body(), "logprobs", true), "logprobs",
                               "'logprobs' must be an integer"));
}

// ---- max_tokens, stop, stream, logprobs, ignore_eos, user --------------------------------------

TEST(CompletionRequestTest, MaxTokens) {
  EXPECT_EQ(*completion(with(completion_body(), "max_tokens", 16)).max_tokens, 16);
  EXPECT_EQ(*chat(with(chat_body(), "max_tokens", 7)).max_tokens, 7);
  EXPECT_EQ(*chat(with(chat_body(), "max_completion_tokens", 9)).max_tokens, 9);
  json both = with(chat_body(), "max_tokens", 7);
  both["max_completion_tokens"] = 9;
  EXPECT_EQ(*chat(both).max_tokens, 9);
  // Not a completions field: ignored there.
  EXPECT_FALSE(completion(with(completion_body(), "max_completion_tokens", 9)).max_tokens);
}

TEST(CompletionRequestTest, Stop) {
  EXPECT_EQ(chat(with(chat_body(), "stop", "\n")).stop, (std::vector<std::string>{"\n"}));
  EXPECT_EQ(chat(with(chat_body(), "stop", json::array({"a", "bb", "c", "d"}))).stop,
            (std::vector<std::string>{"a", "bb", "c", "d"}));
  EXPECT_TRUE(chat(with(chat_body(), "stop", json::array())).stop.empty());
  EXPECT_TRUE(chat_fails(with(chat_body(), "stop", json::array({"a", "b", "c", "d", "e"})),
                         "stop", "at most 4 strings, got 5"));
  EXPECT_TRUE(chat_fails(with(chat_body(), "stop", ""), "stop", "'stop' must not be empty"));
  EXPECT_TRUE(chat_fails(with(chat_body(), "stop", json::array({"a", ""})), "stop[1]",
                         "'stop[1]' must not be empty"));
}

TEST(CompletionRequestTest, StreamAndStreamOptions) {
  json body = with(chat_body(), "stream", true);
  CompletionRequest r = chat(body);
  EXPECT_TRUE(r.stream);
  EXPECT_FALSE(r.include_usage);
  r = chat(with(body, "stream_options", {{"include_usage", true}}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  r = chat(with(body, "stream_options", json::object()));
  EXPECT_FALSE(r.include_usage);
  EXPECT_TRUE(chat_fails(with(chat_body(), "stream_options", {{"include_usage", true}}),
                         "stream_options", "only allowed when 'stream' is true"));
  json off = with(chat_body(), "stream", false);
  EXPECT_TRUE(completion_fails(with(with(completion_body(), "stream", false), "stream_options",
                                    {{"include_usage", false}}),
                               "stream_options", "only allowed when 'stream' is true"));
  EXPECT_FALSE(chat(with(off, "stream_options", nullptr)).stream);
}

TEST(CompletionRequestTest, ChatLogprobs) {
  json body = with(chat_body(), "logprobs", true);
  CompletionRequest r = chat(body);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 0);
  r = chat(with(body, "top_logprobs", 20));
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 20);
  EXPECT_TRUE(chat_fails(with(body, "top_logprobs", 21), "top_logprobs",
                         "'top_logprobs' must be in [0, 20], got 21"));
  EXPECT_TRUE(chat_fails(with(body, "top_logprobs", -1), "top_logprobs", "in [0, 20]"));
  EXPECT_TRUE(chat_fails(with(chat_body(), "top_logprobs", 3), "top_logprobs",
                         "requires 'logprobs' to be true"));
  EXPECT_TRUE(chat_fails(with(with(chat_body(), "logprobs", false), "top_logprobs", 3),
                         "top_logprobs", "requires 'logprobs' to be true"));
}

TEST(CompletionRequestTest, CompletionLogprobsIsACount) {
  CompletionRequest r = completion(with(completion_body(), "logprobs", 3));
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 3);
  r = completion(with(completion_body(), "logprobs", 0));
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 0);
  r = completion(with(completion_body(), "logprobs", 5));
  EXPECT_EQ(r.top_logprobs, 5);
  EXPECT_TRUE(completion_fails(with(completion_body(), "logprobs", 6), "logprobs",
                               "'logprobs' must be in [0, 5], got 6"));
  EXPECT_TRUE(completion_fails(with(completion_body(), "logprobs", -1), "logprobs", "[0, 5]"));
}

TEST(CompletionRequestTest, IgnoreEosAndUser) {
  json body = with(completion_body(), "ignore_eos", true);
  body["user"] = "alice";
  const CompletionRequest r = completion(body);
  EXPECT_TRUE(r.ignore_eos);
  EXPECT_EQ(r.user, "alice");
}

// ---- unsupported features ----------------------------------------------------------------------

TEST(CompletionRequestTest, UnsupportedFieldsAtTheirDefaultAreAccepted) {
  const json body = json::parse(R"({"model": "m", "prompt": "p", "n": 1, "best_of": 1,
      "echo": false, "suffix": null, "logit_bias": {}, "tools": [], "functions": [],
      "tool_choice": "none", "response_format": {"type": "text"}})");
  EXPECT_NO_THROW(completion(body));
  json chat_req = chat_body();
  for (auto& [k, v] : body.items())
    if (k != "prompt" && k != "model") chat_req[k] = v;
  EXPECT_NO_THROW(chat(chat_req));
}

TEST(CompletionRequestTest, UnsupportedFieldsAreRefused) {
  struct Case {
    const char* key;
    json value;
  };
  const Case cases[] = {
      {"n", 2},
      {"n", 0},
      {"best_of", 3},
      {"echo", true},
      {"suffix", "tail"},
      {"suffix", ""},
      {"logit_bias", {{"50256", -100}}},
      {"tools", json::parse(R"([{"type": "function", "function": {"name": "f"}}])")},
      {"functions", json::parse(R"([{"name": "f"}])")},
      {"tool_choice", "auto"},
      {"tool_choice", json::parse(R"({"type": "function", "function": {"name": "f"}})")},
      {"response_format", {{"type", "json_object"}}},
      {"response_format", {{"type", "json_schema"}, {"json_schema", json::object()}}},
  };
  for (const Case& c : cases) {
    EXPECT_TRUE(completion_fails(with(completion_body(), c.key, c.value), c.key, "not supported"))
        << c.key << " " << c.value;
    EXPECT_TRUE(chat_fails(with(chat_body(), c.key, c.value), c.key, "not supported"))
        << c.key << " " << c.value;
  }
  EXPECT_TRUE(chat_fails(with(chat_body(), "response_format", json::object()),
                         "response_format.type", "is required"));
}

// ---- embeddings --------------------------------------------------------------------------------

TEST(EmbeddingRequestTest, MinimalAndDefaults) {
  const EmbeddingRequest r = parse_embedding_request(embedding_body());
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.texts, (std::vector<std::string>{"hi"}));
  EXPECT_TRUE(r.token_inputs.empty());
  EXPECT_FALSE(r.base64);
  EXPECT_FALSE(r.dimensions.has_value());
}

TEST(EmbeddingRequestTest, InputForms) {
  EmbeddingRequest r = parse_embedding_request(with(embedding_body(), "input", {"a", "b"}));
  EXPECT_EQ(r.texts, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(r.token_inputs.empty());

  r = parse_embedding_request(with(embedding_body(), "input", json::array({3, 1, 4})));
  EXPECT_TRUE(r.texts.empty());
  ASSERT_EQ(r.token_inputs.size(), 1u);
  EXPECT_EQ(r.token_inputs[0], (std::vector<int32_t>{3, 1, 4}));

  r = parse_embedding_request(with(embedding_body(), "input", json::parse("[[1, 2], [3]]")));
  EXPECT_TRUE(r.texts.empty());
  ASSERT_EQ(r.token_inputs.size(), 2u);
  EXPECT_EQ(r.token_inputs[0], (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(r.token_inputs[1], (std::vector<int32_t>{3}));
}

TEST(EmbeddingRequestTest, Options) {
  json body = with(embedding_body(), "encoding_format", "base64");
  body["dimensions"] = 256;
  body["user"] = "bob";
  EmbeddingRequest r = parse_embedding_request(body);
  EXPECT_TRUE(r.base64);
  EXPECT_EQ(*r.dimensions, 256);
  EXPECT_FALSE(parse_embedding_request(with(embedding_body(), "encoding_format", "float")).base64);
  EXPECT_TRUE(embedding_fails(with(embedding_body(), "encoding_format", "int8"),
                              "encoding_format", "must be 'float' or 'base64', got 'int8'"));
  EXPECT_TRUE(embedding_fails(with(embedding_body(), "encoding_format", 1), "encoding_format",
                              "'encoding_format' must be a string"));
  EXPECT_TRUE(embedding_fails(with(embedding_body(), "dimensions", 0), "dimensions",
                              "'dimensions' must be >= 1, got 0"));
  EXPECT_TRUE(embedding_fails(with(embedding_body(), "dimensions", 1.5), "dimensions",
                              "'dimensions' must be an integer"));
  EXPECT_TRUE(embedding_fails(with(embedding_body(), "user", 1), "user", "must be a string"));
}

TEST(EmbeddingRequestTest, InputErrors) {
  json body = embedding_body();
  body.erase("input");
  EXPECT_TRUE(embedding_fails(body, "input", "'input' is required"));
  EXPECT_TRUE(embedding_fails(with(embedding_body(), "input", nullptr), "input", "is required"));
  EXPECT_TRUE(embedding_fails(with(embedding_body(), "input", ""), "input",
                              "'input' must not be empty"));
  EXPECT_TRUE(embedding_fails(with(embedding_body(), "input", json::array()), "input",
                              "must not be an empty array"));
  EXPECT_TRUE(embedding_fails(with(embedding_body(), "input", 5), "input", "must be an array"));
  EXPECT_TRUE(embedding_fails(with(embedding_body(), "input", json::array({true})), "input",
                              "must be a string, an array of strings, or token ids"));
  EXPECT_TRUE(embedding_fails(with(embedding_body(), "input", {"a", ""}), "input[1]",
                              "'input[1]' must not be empty"));
  EXPECT_TRUE(embedding_fails(with(embedding_body(), "input", json::parse(R"(["a", 1])")),
                              "input[1]", "'input[1]' must be a string"));
  EXPECT_TRUE(embedding_fails(with(embedding_body(), "input", json::parse("[1, \"a\"]")),
                              "input[1]", "must be a token id"));
  EXPECT_TRUE(embedding_fails(with(embedding_body(), "input", json::parse("[[1], 2]")),
                              "input[1]", "'input[1]' must be an array"));
  EXPECT_TRUE(embedding_fails(with(embedding_body(), "input", json::parse("[[1], []]")),
                              "input[1]", "must not be an empty array"));
  EXPECT_TRUE(embedding_fails(with(embedding_body(), "input", json::parse("[[1, -2]]")),
                              "input[0][1]", ">= 0, got -2"));
  json no_model = embedding_body();
  no_model.erase("model");
  EXPECT_TRUE(embedding_fails(no_model, "model", "'model' is required"));
}

TEST(EmbeddingRequestTest, InputCountLimit) {
  json many = json::array();
  for (int i = 0; i < 2048; ++i) many.push_back("x");
  EXPECT_EQ(parse_embedding_request(with(embedding_body(), "input", many)).texts.size(), 2048u);
  many.push_back("x");
  EXPECT_TRUE(embedding_fails(with(embedding_body(), "input", many), "input",
                              "at most 2048 inputs, got 2049"));
  // One input of token ids is not limited by the input count.
  json ids = json::array();
  for (int i = 0; i < 3000; ++i) ids.push_back(i);
  EXPECT_EQ(parse_embedding_request(with(embedding_body(), "input", ids)).token_inputs[0].size(),
            3000u);
}

}  // namespace
}  // namespace slm
