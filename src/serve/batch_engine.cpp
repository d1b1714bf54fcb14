#include "serve/batch_engine.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "generate/sampler.h"
#include "generate/token_emitter.h"
#include "serve/metrics.h"

namespace slm {

struct BatchEngine::Slot {
  Slot(const ModelConfig& c, int64_t context, DType kv_type) : kv(c, context, kv_type) {}

  KvCache kv;
  bool busy = false;
  uint64_t admitted = 0;               // admission order: prompts are prefilled first come first
  std::shared_ptr<RequestState> state;
  GenerationJob job;
  std::unique_ptr<Sampler> sampler;
  GenerateResult result;
  TextCallback on_text;
  std::string pending_text;            // text of the current step, handed to the state in one emit
  std::unique_ptr<TokenEmitter> emitter;
  std::vector<int32_t> history;        // prompt + generated tokens (the penalties' window)
  int64_t fed = 0;                     // prompt tokens fed so far
  int64_t cached = 0;                  // of which taken from the previous sequence's cache
  int32_t next = -1;                   // sampled token to feed at the next step; -1: prefilling
  std::vector<float> logits;           // [n_vocab]
  std::vector<float> hidden;           // [prefill_chunk, dim]: embeddings' hidden states
  std::vector<double> hidden_sum;      // [dim]
  Clock::time_point last_token;
};

BatchEngine::BatchEngine(std::string name, std::unique_ptr<Model> model,
                         const BatchEngineOptions& options, ServerMetrics* metrics)
    : name_(std::move(name)), model_(std::move(model)), opt_(options), metrics_(metrics),
      pool_(std::max(1, options.threads)) {
  const ModelConfig& c = model_->config();
  if (opt_.slots < 1) throw Error("serve: --parallel must be >= 1");
  if (opt_.prefill_chunk < 1) throw Error("serve: --prefill-chunk must be >= 1");
  if (opt_.queue < 0) throw Error("serve: --queue must be >= 0");
  context_ = opt_.context > 0 ? opt_.context : c.ctx_len;
  if (context_ < 2) throw Error("serve: the context must hold at least 2 positions");
  transformer_ = std::make_unique<Transformer>(*model_, pool_);
  for (int i = 0; i < opt_.slots; ++i) {
    auto s = std::make_unique<Slot>(c, context_, opt_.kv_type);
    s->logits.resize(static_cast<size_t>(c.n_vocab));
    slots_.push_back(std::move(s));
  }
  worker_ = std::thread([this] { run(); });
}

BatchEngine::~BatchEngine() { shutdown(std::chrono::milliseconds(0)); }

std::shared_ptr<RequestState> BatchEngine::submit(GenerationJob job) {
  if (auto refused = refuse_prompt(job, context_)) return refused;
  auto state = std::make_shared<RequestState>();
  {
    std::lock_guard lock(mu_);
    if (!accepting_) throw EngineBusy{503, "the server is shutting down", 1};
    const int64_t free_slots = static_cast<int64_t>(slots_.size()) - active_;
    if (static_cast<int64_t>(queue_.size()) >= opt_.queue + std::max<int64_t>(free_slots, 0))
      throw EngineBusy{429, "all " + std::to_string(slots_.size()) + " slots of model '" + name_ +
                                "' are busy and " + std::to_string(queue_.size()) +
                                " requests are waiting; retry later",
                       1};
    queue_.push_back({std::move(job), state});
    interrupt_.store(true, std::memory_order_relaxed);
  }
  cv_.notify_all();
  publish_load();
  return state;
}

EngineLoad BatchEngine::load() const {
  std::lock_guard lock(mu_);
  return {static_cast<int64_t>(queue_.size()), active_, static_cast<int64_t>(slots_.size())};
}

void BatchEngine::publish_load() {
  if (!metrics_) return;
  const EngineLoad l = load();
  metrics_->set_queue_depth(name_, l.queued);
  metrics_->set_active_slots(name_, l.active);
}

void BatchEngine::shutdown(std::chrono::milliseconds grace) {
  std::deque<Pending> dropped;
  {
    std::unique_lock lock(mu_);
    if (!worker_.joinable()) return;
    accepting_ = false;
    dropped.swap(queue_);
  }
  for (Pending& p : dropped) p.state->fail(503, "the server is shutting down");
  {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, grace, [&] { return active_ == 0 && queue_.empty(); });
    stop_ = true;
    interrupt_.store(true, std::memory_order_relaxed);
  }
  cv_.notify_all();
  worker_.join();
}

int64_t BatchEngine::common_prefix(const Slot& s, const std::vector<int32_t>& prompt) {
  const int64_t held = std::min<int64_t>(s.kv.size(), static_cast<int64_t>(s.history.size()));
  const int64_t n = std::min<int64_t>(held, static_cast<int64_t>(prompt.size()));
  int64_t i = 0;
  while (i < n && s.history[static_cast<size_t>(i)] == prompt[static_cast<size_t>(i)]) ++i;
  return i;
}

BatchEngine::Slot* BatchEngine::take_slot_locked() {
  if (queue_.empty()) return nullptr;
  // The free slot whose cached sequence shares the longest prefix with the prompt.
  Slot* best = nullptr;
  int64_t best_len = -1;
  for (auto& s : slots_) {
    if (s->busy) continue;
    const int64_t len = common_prefix(*s, queue_.front().job.prompt);
    if (len > best_len) best = s.get(), best_len = len;
  }
  if (!best) return nullptr;
  best->busy = true;
  best->admitted = ++admissions_;
  ++active_;
  return best;
}

bool BatchEngine::admit(Slot& s, Pending p) {
  s.state = std::move(p.state);
  s.job = std::move(p.job);
  // Prompt caching: the slot's cache still holds its previous sequence; the positions that
  // sequence shares with this prompt are kept, and prefill starts after them. At least one
  // prompt token is fed again, for its logits. Embeddings need every position's hidden state.
  const int64_t reuse = s.job.embedding || !opt_.prompt_cache ? 0 : std::min<int64_t>(common_prefix(s, s.job.prompt),
                                                                 static_cast<int64_t>(s.job.prompt.size()) - 1);
  s.kv.truncate(std::max<int64_t>(reuse, 0));
  s.cached = s.kv.size();
  s.result = GenerateResult{};
  s.result.prompt_tokens = static_cast<int64_t>(s.job.prompt.size());
  s.history = s.job.prompt;
  s.fed = s.kv.size();
  s.next = -1;
  s.sampler.reset();
  s.emitter.reset();
  if (s.job.embedding) {
    s.hidden.resize(static_cast<size_t>(opt_.prefill_chunk * model_->config().dim));
    s.hidden_sum.assign(static_cast<size_t>(model_->config().dim), 0.0);
    return true;
  }
  const Tokenizer& tok = model_->tokenizer();
  RequestState* state = s.state.get();
  s.pending_text.clear();
  s.on_text = [state, &pending = s.pending_text](std::string_view piece) {
    pending += piece;
    return !state->cancelled();
  };
  try {
    s.sampler = std::make_unique<Sampler>(s.job.options.sampler);
    s.emitter = std::make_unique<TokenEmitter>(
        s.job.options, [&tok](int32_t id) { return tok.token_to_piece(id); },
        [&tok](int32_t id) { return tok.is_end_of_generation(id); }, s.on_text, s.result);
  } catch (const Error& e) {
    const std::string message = e.what();
    finish_and_free(s, [&](RequestState& st) { st.fail(400, message); });
    return false;
  }
  if (s.emitter->done()) {  // max_tokens == 0
    release(s, s.result.stop_reason);
    return false;
  }
  return true;
}

void BatchEngine::release(Slot& s, const std::string& reason) {
  if (s.emitter) {
    if (!s.emitter->done()) s.emitter->end(reason);
    s.emitter->finish();
  }
  hand_over(s, nullptr, 0);
  TokenCounts counts;
  counts.prompt = static_cast<int64_t>(s.job.prompt.size());
  counts.completion = static_cast<int64_t>(s.result.tokens.size());
  counts.cached = s.cached;
  if (metrics_) metrics_->tokens(name_, counts.prompt, counts.completion);
  // "eog": the model ended its answer, which the API calls "stop".
  finish_and_free(s, [&](RequestState& st) { st.finish(reason == "eog" ? "stop" : reason, counts); });
}

void BatchEngine::finish_and_free(Slot& s, const std::function<void(RequestState&)>& finish) {
  // The slot is free before the client hears the answer, so a client that sends its next
  // request at once finds it free (and is not refused with a 429 by a full queue).
  std::shared_ptr<RequestState> state = std::move(s.state);
  s.emitter.reset();
  s.sampler.reset();
  {
    // Under the lock: a thread of a decode session may be choosing a free slot right now.
    std::lock_guard lock(mu_);
    s.busy = false;  // the cache stays: the next prompt may share a prefix with it
    --active_;
  }
  cv_.notify_all();
  publish_load();
  finish(*state);
}

bool BatchEngine::after_logits(Slot& s) {
  std::vector<float> lsm;
  if (s.job.options.logprobs) lsm = log_softmax(s.logits);  // before the sampler's penalties
  const int32_t tok = s.sampler->sample(s.logits, s.history);
  const Clock::time_point now = Clock::now();
  if (metrics_) {
    if (s.result.tokens.empty()) metrics_->time_to_first_token(name_, std::chrono::duration<double>(now - s.job.submitted).count());
    else metrics_->inter_token_latency(name_, std::chrono::duration<double>(now - s.last_token).count());
  }
  s.last_token = now;
  const size_t before = s.result.tokens.size();
  const bool more = s.emitter->push(tok, lsm);
  const int64_t added = static_cast<int64_t>(s.result.tokens.size() - before);
  const TokenLogprob* lp =
      added > 0 && s.job.options.logprobs && !s.result.logprobs.empty() ? &s.result.logprobs.back() : nullptr;
  hand_over(s, lp, added);
  if (!more) {
    if (metrics_ && s.result.stop_reason == "cancelled") metrics_->rejected(name_, "cancelled");
    release(s, s.result.stop_reason);
    return false;
  }
  s.history.push_back(tok);
  s.next = tok;
  return true;
}

void BatchEngine::hand_over(Slot& s, const TokenLogprob* logprob, int64_t new_tokens) {
  if (new_tokens == 0 && s.pending_text.empty()) return;
  // Text, token count and log-probability in one emit: each emit may wake the handler, a system
  // call (and often a switch to the handler) that costs tens of microseconds on this VM.
  s.state->emit(s.pending_text, logprob, new_tokens);
  s.pending_text.clear();
}

void BatchEngine::finish_embedding(Slot& s) {
  const size_t dim = s.hidden_sum.size();
  std::vector<float> e(dim);
  double norm = 0.0;
  for (size_t i = 0; i < dim; ++i) {
    e[i] = static_cast<float>(s.hidden_sum[i] / static_cast<double>(s.job.prompt.size()));
    norm += static_cast<double>(e[i]) * e[i];
  }
  norm = std::sqrt(norm);
  if (norm > 0)
    for (float& v : e) v = static_cast<float>(v / norm);
  TokenCounts counts;
  counts.prompt = static_cast<int64_t>(s.job.prompt.size());
  if (metrics_) metrics_->tokens(name_, counts.prompt, 0);
  finish_and_free(s, [&](RequestState& st) { st.finish("stop", counts, std::move(e)); });
}

bool BatchEngine::still_running(Slot& s) {
  if (s.state->cancelled()) {
    if (metrics_) metrics_->rejected(name_, "cancelled");
    release(s, "cancelled");
  } else if (Clock::now() > s.job.deadline) {
    if (metrics_) metrics_->rejected(name_, "time_limit");
    release(s, "time_limit");
  } else if (s.next >= 0 && s.kv.size() + 1 > s.kv.capacity()) {
    release(s, "length");  // the context is full
  } else {
    return true;
  }
  return false;
}

bool BatchEngine::session_admit(std::vector<Slot*>& group) {
  if (!interrupt_.load(std::memory_order_relaxed)) return true;
  Slot* slot = nullptr;
  Pending p;
  {
    std::lock_guard lock(mu_);
    if (stop_) return false;
    if (queue_.empty()) {
      interrupt_.store(false, std::memory_order_relaxed);
      return true;
    }
    // Embeddings, and prompts while no slot is free, are the engine thread's.
    if (queue_.front().job.embedding) return active_ >= static_cast<int64_t>(slots_.size());
    // The thread with fewer sequences than its share takes the request.
    if (static_cast<int64_t>(group.size()) * pool_.size() > active_) return true;
    slot = take_slot_locked();
    if (!slot) return true;
    p = std::move(queue_.front());
    queue_.pop_front();
    interrupt_.store(!queue_.empty(), std::memory_order_relaxed);
  }
  session_admissions_.fetch_add(1, std::memory_order_relaxed);
  if (admit(*slot, std::move(p))) group.push_back(slot);
  publish_load();
  return true;
}

void BatchEngine::run_session(const std::vector<Slot*>& members) {
  const size_t lanes = static_cast<size_t>(pool_.size()), n = members.size();
  session_groups_.resize(lanes);
  for (size_t t = 0; t < lanes; ++t)
    session_groups_[t].assign(members.begin() + static_cast<std::ptrdiff_t>(t * n / lanes),
                              members.begin() + static_cast<std::ptrdiff_t>((t + 1) * n / lanes));
  sessions_.fetch_add(1, std::memory_order_relaxed);
  std::atomic<bool> end{false};
  pool_.run([this, &end](int t) { run_lane(t, session_groups_[static_cast<size_t>(t)], end); });
}

void BatchEngine::run_lane(int lane, std::vector<Slot*>& group, std::atomic<bool>& end) {
  std::vector<SequenceBatch> fed;
  std::vector<Slot*> fed_slots;  // fed[i] is fed_slots[i]'s
  // Prompt tokens a step of this thread feeds: its share of the engine's budget.
  const int64_t chunk = std::max<int64_t>(1, opt_.prefill_chunk / pool_.size());
  try {
    while (!group.empty()) {
      fed.clear();
      fed_slots.clear();
      int64_t budget = chunk;
      for (Slot* s : group) {
        if (s->next >= 0) {
          fed.push_back({&s->next, 1, &s->kv, s->logits.data(), false, nullptr});
        } else {
          // A prompt the budget does not reach this step waits for a later one.
          const int64_t left = static_cast<int64_t>(s->job.prompt.size()) - s->fed;
          const int64_t take = std::min(left, budget);
          if (take == 0) continue;
          budget -= take;
          fed.push_back({s->job.prompt.data() + s->fed, take, &s->kv, take == left ? s->logits.data() : nullptr,
                         false, nullptr});
        }
        fed_slots.push_back(s);
      }
      transformer_->forward_lane(lane, fed);
      // Which slots go on is known here only: a slot this thread released may already be
      // another thread's again (its busy flag says nothing about this group).
      size_t kept = 0, next_fed = 0;
      for (Slot* s : group) {
        bool alive = true;
        if (next_fed < fed_slots.size() && fed_slots[next_fed] == s) {
          const int64_t n = fed[next_fed++].n;
          if (s->next >= 0) {
            alive = after_logits(*s);
          } else {
            s->fed += n;
            if (s->fed == static_cast<int64_t>(s->job.prompt.size())) alive = after_logits(*s);
          }
        }
        if (alive && still_running(*s)) group[kept++] = s;
      }
      group.resize(kept);
      if (end.load(std::memory_order_relaxed) || !session_admit(group)) break;
    }
  } catch (const std::exception& e) {
    const std::string message = std::string("forward pass failed: ") + e.what();
    for (Slot* s : group)
      if (s->busy) finish_and_free(*s, [&](RequestState& st) { st.fail(500, message); });
    group.clear();
  }
  end.store(true, std::memory_order_relaxed);
}

void BatchEngine::run() {
  std::vector<SequenceBatch> batch;
  std::vector<Slot*> members;
  std::vector<Slot*> prefilling;
  const int64_t dim = model_->config().dim;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || active_ > 0 || !queue_.empty(); });
      if (stop_) break;
      while (!queue_.empty()) {
        Slot* best = take_slot_locked();
        if (!best) break;
        Pending p = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        admit(*best, std::move(p));
        lock.lock();
      }
      // What is still queued waits for a slot: sessions end when one frees up.
      interrupt_.store(!queue_.empty(), std::memory_order_relaxed);
    }
    publish_load();

    batch.clear();
    members.clear();
    prefilling.clear();
    for (auto& s : slots_) {
      if (!s->busy || !still_running(*s)) continue;
      if (s->next < 0) {
        prefilling.push_back(s.get());
        continue;
      }
      batch.push_back({&s->next, 1, &s->kv, s->logits.data(), false, nullptr});
      members.push_back(s.get());
    }
    std::sort(prefilling.begin(), prefilling.end(), [](const Slot* a, const Slot* b) { return a->admitted < b->admitted; });
    int64_t budget = opt_.prefill_chunk;
    for (Slot* s : prefilling) {
      if (budget == 0) break;
      const int64_t left = static_cast<int64_t>(s->job.prompt.size()) - s->fed;
      const int64_t take = std::min(left, budget);
      const bool last = take == left;
      SequenceBatch b{s->job.prompt.data() + s->fed, take, &s->kv, nullptr, false, nullptr};
      if (s->job.embedding) b.hidden = s->hidden.data();
      else if (last) b.logits = s->logits.data();
      batch.push_back(b);
      members.push_back(s);
      budget -= take;
    }
    if (batch.empty()) continue;
    if (prefilling.empty() && transformer_->splits_by_sequence() &&
        static_cast<int64_t>(members.size()) >= 2 * static_cast<int64_t>(pool_.size())) {
      run_session(members);
      continue;
    }

    try {
      transformer_->forward_batch(batch);
    } catch (const std::exception& e) {
      const std::string message = std::string("forward pass failed: ") + e.what();
      for (Slot* s : members)
        finish_and_free(*s, [&](RequestState& st) { st.fail(500, message); });
      continue;
    }

    for (size_t i = 0; i < members.size(); ++i) {
      Slot& s = *members[i];
      const SequenceBatch& b = batch[i];
      if (s.next >= 0) {  // a decode step
        after_logits(s);
        continue;
      }
      s.fed += b.n;
      const bool done = s.fed == static_cast<int64_t>(s.job.prompt.size());
      if (s.job.embedding) {
        for (int64_t r = 0; r < b.n; ++r)
          for (int64_t d = 0; d < dim; ++d) s.hidden_sum[static_cast<size_t>(d)] += s.hidden[static_cast<size_t>(r * dim + d)];
        if (done) finish_embedding(s);
      } else if (done) {
        after_logits(s);
      }
    }
  }

  // Stopping: whatever is still running is cancelled.
  for (auto& s : slots_)
    if (s->busy) release(*s, "cancelled");
}

}  // namespace slm
