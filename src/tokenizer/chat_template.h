// Chat templates without a Jinja engine: the family of a model's template (GGUF key
// `tokenizer.chat_template`) is recognised from marker substrings, and each family's prompt is
// rendered in C++ exactly as that family's canonical Jinja template renders it (the same
// whitespace, trimming, BOS/EOS placement, default system prompt and role rules).
//
// Contract:
//  - render_chat() returns the prompt as text with special tokens spelled out ("<|im_start|>",
//    "<s>", ...); the caller tokenizes it with parse_special = true. Where the family's template
//    writes `bos_token` the text holds `bos_text`; the caller must then not add another BOS:
//    encode(text, /*add_bos=*/vocab.add_bos && !chat_renders_bos(family), /*parse_special=*/true).
//  - Roles are "system", "user", "assistant". Tool messages and tool calls are not rendered (the
//    tool-use variants of templates are recognised as their base family); any other role, or a
//    conversation shape the real template rejects (a system message for Gemma 2, roles that do
//    not alternate for Llama 2 / Mistral / Gemma / Command-R), throws slm::Error.
//  - An unrecognised template is an error (resolve_chat_template), never a silent ChatML fallback:
//    the user picks a family by name (--chat-template chatml).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace slm {

enum class ChatFamily {
  Unknown,
  ChatML,           // <|im_start|>role\n...<|im_end|>\n — Qwen 2/2.5, Hermes, SmolLM, Yi ...
  Phi4,             // <|im_start|>role<|im_sep|>...<|im_end|>
  Llama2,           // <s>[INST] <<SYS>>\n...\n<</SYS>>\n\nuser [/INST] assistant </s>
  MistralV1,        // <s> [INST] user [/INST] assistant</s> (system on the first user turn)
  MistralV3,        // <s>[INST] user[/INST] assistant</s> (system on the last user turn)
  MistralV3Tekken,  // <s>[INST]user[/INST]assistant</s> — Mistral Nemo
  MistralV7,        // <s>[SYSTEM_PROMPT] sys[/SYSTEM_PROMPT][INST] user[/INST] assistant</s>
  MistralV7Tekken,  // same without the spaces — Mistral Small 3
  Llama3,           // Llama 3.0: <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
  Llama31,          // Llama 3.1/3.2/3.3: Llama 3 plus the "Cutting Knowledge Date" system block
  Phi3,             // <|user|>\n...<|end|>\n — Phi-3 / Phi-3.5
  Gemma,            // Gemma 1/2: <start_of_turn>user\n...<end_of_turn>\n, no system role
  Gemma3,           // Gemma 3: system text merged into the first user turn
  DeepSeekR1,       // <｜User｜>...<｜Assistant｜>...<｜end▁of▁sentence｜>, prompt ends "<think>\n"
  DeepSeekV3,       // the same without the <think> handling
  CommandR,         // <|START_OF_TURN_TOKEN|><|USER_TOKEN|>...<|END_OF_TURN_TOKEN|>
};

struct ChatMessage {
  std::string role;     // "system", "user" or "assistant"
  std::string content;  // UTF-8 text
};

// A family plus the few values the real template carries that change the rendered text.
struct ChatTemplate {
  ChatFamily family = ChatFamily::Unknown;
  // ChatML: the system turn the template inserts when the conversation has none (Qwen 2.5: "You
  // are Qwen, created by Alibaba Cloud. ..."); empty when it inserts none.
  std::string default_system;
  // Llama31: the "Today Date:" line. Templates that call strftime_now (Llama 3.2) render today's
  // date, the others a fixed "26 Jul 2024".
  std::string date_string = "26 Jul 2024";
};

// Family from the template text by marker substrings; Unknown when none matches.
ChatFamily detect_chat_family(std::string_view template_text);
// Family plus the values above read from the template text.
ChatTemplate parse_chat_template(std::string_view template_text);

// "chatml", "llama3", "mistral-v3-tekken", ... (see chat_family_names()); nullopt if unknown.
std::optional<ChatFamily> chat_family_from_name(std::string_view name);
std::string_view chat_family_name(ChatFamily family);  // "unknown" for Unknown
// Every selectable name, comma-separated, for --help and error messages.
std::string chat_family_names();
// Whether the family's template writes bos_token at the start of the prompt itself.
bool chat_renders_bos(ChatFamily family);

// The template to use: `choice` (a family name from --chat-template) if non-empty, otherwise the
// family detected from `gguf_template`. Throws slm::Error naming what was found and listing the
// names when the choice is unknown, the model has no template, or the template is not recognised.
ChatTemplate resolve_chat_template(std::string_view gguf_template, std::string_view choice);

// The prompt text for `messages` (at least one). add_generation_prompt: end with the opening of
// an assistant turn (families whose prompt already ends there, Llama 2 and Mistral, ignore it).
std::string render_chat(const ChatTemplate& tmpl, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt, std::string_view bos_text = "",
                        std::string_view eos_text = "");
std::string render_chat(ChatFamily family, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt, std::string_view bos_text = "",
                        std::string_view eos_text = "");

}  // namespace slm
