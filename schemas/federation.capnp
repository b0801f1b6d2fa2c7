# fedsp federation protocol.
#
# Every message that crosses the federation boundary (server, clients,
# aggregator, evaluator) is one `Envelope`, serialised as a single unpacked
# Cap'n Proto message (standard segment table framing, little-endian words).
# In one process and across machines the encoding is the same: CAF carries the
# word-aligned buffer as one registered type and the receiver reads it in place.
#
# Versioning
#   `protocolVersion` below is bumped on any change a reader cannot ignore.
#   A receiver rejects an envelope whose version differs from its own with a
#   `Reject` of reason `unsupportedVersion`. Field and union ordinals are never
#   reused: a removed field is kept and marked obsolete.
#
# Tensors
#   A `Tensor` is a named, row-major array. `data` holds the elements
#   little-endian in the stated dtype: 4 bytes each for f32, 2 for f16 (IEEE
#   binary16) and bf16 (the upper half of an f32). Its length must be exactly
#   product(shape) * element size. Readers reject non-finite values.
#
# Limits
#   Readers bound a message by size and traversal (see runtime/codec.hpp):
#   large enough for the prompts of the models fedsp serves, no larger.
#
# Time
#   Durations and deadlines are in seconds on the run's clock (virtual or real;
#   see docs/architecture.md "The clock"), as Float64.

@0xdb4909553f781892;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("fedsp::wire");

const protocolVersion :UInt16 = 2;
# The version this schema describes. Envelope.protocolVersion must equal it.
# 2: modelChunk defined (was a reserved Void variant in 1); Welcome announces
#    the model a client will receive.

enum DType {
  f32 @0;   # IEEE binary32
  f16 @1;   # IEEE binary16
  bf16 @2;  # bfloat16: the upper 16 bits of a binary32
}

struct Tensor {
  name @0 :Text;          # unique within its PromptSet, e.g. "prefix"
  dtype @1 :DType;        # element type of `data`
  shape @2 :List(UInt32); # row-major dimensions; empty means a scalar
  data @3 :Data;          # product(shape) elements, little-endian
}

struct PromptSet {
  version @0 :UInt64;        # the global prompt version these tensors are (or are based on)
  tensors @1 :List(Tensor);  # the soft prompts, one tensor per named buffer
}

struct Metric {
  name @0 :Text;      # e.g. "loss_first", "test_acc"
  value @1 :Float64;  # finite
}

struct Join {
  # client -> server: a client announces itself once, before any task.
  clientId @0 :UInt32;     # the identity it will use for every update
  numSamples @1 :UInt64;   # size of its local training set (FedAvg weight)
}

struct Welcome {
  # server -> client: the reply to Join.
  clientId @0 :UInt32;        # echoes Join.clientId
  currentVersion @1 :UInt64;  # the server's latest published prompt version
  promptShapes @2 :List(Tensor); # the expected prompt layout (names, shapes; data empty)
  modelId @3 :Text;           # the model the client will receive in ModelChunks
                              # ("" when the client needs none)
  modelBytes @4 :UInt64;      # its size in bytes
  modelChunks @5 :UInt32;     # the number of chunks it comes in
}

struct ModelChunk {
  # server -> client: one piece of a model (a safetensors file) the client
  # trains on: the auxiliary model (FedSP) or the global one (FedPrompt). Sent
  # once, after Welcome and before any Task. The receiver checks index,
  # count, sizes and finally the checksum over the whole file.
  modelId @0 :Text;       # names the model; equal in every chunk
  index @1 :UInt32;       # 0-based position of this chunk
  count @2 :UInt32;       # chunks in all
  totalBytes @3 :UInt64;  # size of the whole file
  crc32 @4 :UInt32;       # CRC-32 (IEEE) of the whole file
  data @5 :Data;          # the chunk's bytes
}

struct Task {
  # server -> client: train the given prompts on local data and send an Update.
  taskId @0 :UInt64;        # unique per run; an Update names it
  clientId @1 :UInt32;      # the only client allowed to answer this task
  baseVersion @2 :UInt64;   # version of `prompts`; staleness is measured from it
  prompts @3 :PromptSet;    # the current global prompts
  localSteps @4 :UInt32;    # optimizer steps of the prompt stage
  learningRate @5 :Float32; # prompt-stage learning rate
  batchSize @6 :UInt32;     # examples per optimizer step
  seed @7 :UInt64;          # seeds the client's sampling for this task
  deadline @8 :Float64;     # run-clock time by which the update must arrive
  round @9 :UInt32;         # the round this task belongs to (sync mode)
}

struct Update {
  # client -> aggregator: the result of one Task.
  taskId @0 :UInt64;        # the Task this answers
  clientId @1 :UInt32;      # must equal the Task's clientId
  baseVersion @2 :UInt64;   # the Task's baseVersion
  prompts @3 :PromptSet;    # the locally tuned prompts (same layout as sent)
  numSamples @4 :UInt64;    # examples seen: the FedAvg weight
  metrics @5 :List(Metric); # e.g. loss_first, loss_last of the prompt stage
}

struct EvalRequest {
  # server -> evaluator: score these prompts.
  version @0 :UInt64;       # version being scored
  prompts @1 :PromptSet;    # the prompts of that version
  split @2 :Text;           # data split to score, e.g. "test"
}

struct EvalReport {
  # evaluator -> server: scores of one version.
  version @0 :UInt64;       # echoes EvalRequest.version
  split @1 :Text;           # echoes EvalRequest.split
  metrics @2 :List(Metric); # e.g. acc, acc_norm, loss
  numExamples @3 :UInt64;   # examples scored
}

enum RejectReason {
  unknown @0;             # a reason this reader does not know
  malformed @1;           # the bytes are not a valid Envelope
  unsupportedVersion @2;  # protocolVersion differs from the reader's
  unsupported @3;         # a message kind this reader does not handle
  unknownSender @4;       # the sender never joined
  unknownTask @5;         # no open task has this id
  wrongClient @6;         # the task belongs to another client
  duplicate @7;           # a second update for the same task
  shapeMismatch @8;       # tensor names or shapes differ from the model's
  nonFinite @9;           # a NaN or infinite value
  futureVersion @10;      # baseVersion is newer than anything published
  taskClosed @11;         # the task's round already ended
  tooLarge @12;           # over the reader's size limit
  outlier @13;            # an update far larger than its base (federation.max_update_ratio)
}

struct Reject {
  # any -> sender: the message was not accepted; receiver state is unchanged.
  reason @0 :RejectReason; # machine-readable cause
  text @1 :Text;           # human-readable detail naming what is wrong
  taskId @2 :UInt64;       # the task concerned, 0 if none
}

struct Heartbeat {
  # any -> any: liveness signal. Clients send one every few seconds of wall
  # time; the server treats a task as lost when its client falls silent, or
  # when the client's heartbeats stop listing it (the Task never arrived).
  time @0 :Float64;         # sender's run-clock time
  tasks @1 :List(UInt64);   # the tasks the sender holds: received, not yet answered
                            # (at most 4096)
}

struct Ack {
  # aggregator -> client: the Update for `taskId` is accepted and recorded.
  taskId @0 :UInt64;
}

struct Shutdown {
  # server -> everyone: the run is over; stop after this.
  reason @0 :Text;
}

struct Envelope {
  protocolVersion @0 :UInt16;  # must equal `protocolVersion` above
  sender @1 :Text;             # actor name of the sender, e.g. "client-3", "server"
  body :union {
    join @2 :Join;
    welcome @3 :Welcome;
    task @4 :Task;
    update @5 :Update;
    evalRequest @6 :EvalRequest;
    evalReport @7 :EvalReport;
    reject @8 :Reject;
    heartbeat @9 :Heartbeat;
    shutdown @10 :Shutdown;
    ack @11 :Ack;
    modelChunk @12 :ModelChunk;
    resume @13 :Void;       # reserved: resume after restart (not yet defined)
  }
}
