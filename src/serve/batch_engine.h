// Continuous batching for one model: N slots, each a sequence with its own KV cache; one worker
// thread runs steps, and each step feeds every generating slot's next token plus a bounded chunk
// of waiting prompts through one Transformer::forward_batch call. A request joins at the next
// step after a slot frees up and leaves the moment it finishes; long prompts are split over
// several steps (prefill_chunk tokens per step in all), so a new prompt delays the running
// streams by at most one chunk's worth of work per token instead of stalling them. A finished
// slot keeps its cache: a prompt that starts like a slot's previous sequence (the next turn of a
// chat, a shared system prompt) goes to that slot and is prefilled only from where they differ.
// With a small model (Transformer::splits_by_sequence) and at least two decoding slots per
// thread, the threads instead run a decode session: each its own group of slots, step after
// step, admitting and prefilling queued requests itself, with no barrier between the threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "serve/engine.h"

namespace slm {

class ServerMetrics;

struct BatchEngineOptions {
  int slots = 4;                 // sequences decoded together, >= 1
  int64_t context = 0;           // positions per slot; 0: the model's context length
  DType kv_type = DType::F32;
  int64_t queue = 64;            // requests waiting for a slot before submit() answers 429
  int64_t prefill_chunk = 128;   // prompt tokens fed per step, over all slots, >= 1
  int threads = 1;               // compute threads of this engine's pool
  bool prompt_cache = true;      // reuse a slot's cached prefix (see the header comment)
};

class BatchEngine : public Engine {
 public:
  // name: the served model name (metrics labels). metrics may be null. Starts the worker thread.
  BatchEngine(std::string name, std::unique_ptr<Model> model, const BatchEngineOptions& options,
              ServerMetrics* metrics);
  ~BatchEngine() override;

  std::shared_ptr<RequestState> submit(GenerationJob job) override;
  void shutdown(std::chrono::milliseconds grace) override;
  EngineLoad load() const override;
  const Model& model() const override { return *model_; }
  int64_t context() const override { return context_; }
  bool supports_embeddings() const override { return true; }
  std::string kind() const override { return "single"; }
  // Decode sessions run so far (see run_session), and requests their threads admitted; for tests
  // and diagnostics.
  uint64_t decode_sessions() const { return sessions_.load(std::memory_order_relaxed); }
  uint64_t session_admissions() const { return session_admissions_.load(std::memory_order_relaxed); }

 private:
  struct Slot;
  struct Pending {
    GenerationJob job;
    std::shared_ptr<RequestState> state;
  };

  void run();
  // A decode session (models that split batches by sequence, at least two decoding slots per
  // thread, no prompt waiting): each thread takes its own group of slots through forward pass,
  // sampling and hand-over, step after step, without waiting for the other threads; it admits
  // queued requests into its group and prefills them itself (its share of prefill_chunk per
  // step). The session ends when a group runs empty, at shutdown, or for an embedding request.
  void run_session(const std::vector<Slot*>& members);
  void run_lane(int lane, std::vector<Slot*>& group, std::atomic<bool>& end);
  // Between two steps of a session thread: takes a queued request into `group` if a slot is free
  // and the thread has no more than its share of the running sequences; false when the session
  // must hand the threads back (shutdown; an embedding request that a free slot could take).
  bool session_admit(std::vector<Slot*>& group);
  // Under mu_: the free slot for the first queued prompt, marked busy and counted; null if none.
  Slot* take_slot_locked();
  // Positions of the slot's cache that hold the same tokens as the start of prompt.
  static int64_t common_prefix(const Slot& slot, const std::vector<int32_t>& prompt);
  // Takes the request into a slot that take_slot_locked() chose; false if it ended at once (bad
  // sampling options: 400; max_tokens 0) and the slot is free again.
  bool admit(Slot& slot, Pending p);
  // Before a slot's next step: ends its request if the client went away, its time limit passed or
  // its context is full (a decoding slot); whether it goes on.
  bool still_running(Slot& slot);
  // Ends the slot's request and frees it.
  void release(Slot& slot, const std::string& reason);
  // After a forward step: sample the slot's next token from its logits and emit it; false if
  // that ended the request (the slot is free again).
  bool after_logits(Slot& slot);
  // Hands the slot's new output (the text gathered from its emitter, the new tokens and their
  // log-probability) to its request, in one emit.
  void hand_over(Slot& slot, const TokenLogprob* logprob, int64_t new_tokens);
  void finish_embedding(Slot& slot);
  // Frees the slot, then tells the request (finish(state)).
  void finish_and_free(Slot& slot, const std::function<void(RequestState&)>& finish);
  void publish_load();

  std::string name_;
  std::unique_ptr<Model> model_;
  BatchEngineOptions opt_;
  int64_t context_;
  ServerMetrics* metrics_;
  ThreadPool pool_;
  std::unique_ptr<Transformer> transformer_;
  std::vector<std::unique_ptr<Slot>> slots_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  int64_t active_ = 0;           // slots in use (written under mu_)
  uint64_t admissions_ = 0;      // admission order (under mu_)
  bool accepting_ = true;
  bool stop_ = false;            // cancel everything and exit the worker
  // Set when the worker thread may have work beyond running decode steps (a request was queued,
  // shutdown); sessions check it at each step without taking the lock.
  std::atomic<bool> interrupt_{false};
  std::vector<std::vector<Slot*>> session_groups_;  // worker thread only
  std::atomic<uint64_t> sessions_{0}, session_admissions_{0};
  std::thread worker_;
};

}  // namespace slm
