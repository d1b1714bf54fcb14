// The small-and-large collaboration strategies other than speculative decoding and the token
// router, gathered for callers that use several (slm collab generate / eval):
//   uncertainty.h      per-token uncertainty (maxprob, margin, entropy) and UncertaintyPolicy
//   cascade.h          token-level cascade (FS-GEN): CascadeDecodeModel + any EscalationPolicy
//   request_cascade.h  request-level cascade (AdaptiveLog): small answers, large re-answers if unsure
//   contrastive.h      contrastive decoding: ContrastiveDecodeModel
//   proxy.h            proxy tuning: ProxyDecodeModel
#pragma once

#include "generate/cascade.h"
#include "generate/contrastive.h"
#include "generate/proxy.h"
#include "generate/request_cascade.h"
#include "generate/uncertainty.h"
