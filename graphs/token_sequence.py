"""A consultation's tokens: what SFT and GRPO train on.

case -> consultation graph -> **trace (its tokens)** -> Shapley/SIG -> MCTS-SFT / GRPO -> ...

A recorded consultation (an :class:`~promed_agents.trace.EpisodeRecord`, from evaluation,
a search or GRPO's rollouts, which all run the same graph) holds the policy's tokens:

- :func:`policy_samples`: one :class:`PolicySample` per doctor turn (prompt ids,
  completion ids, logprobs, kind, SIG), exact training data from the backend's metadata;
- :func:`rendered_samples`: the same turns in another model's tokens, rendered from the
  doctor's recorded conversation with that model's chat template (a student whose
  tokenizer is not the doctor's, or a backend that returned no token ids);
- :func:`stitch`: the whole consultation as one :class:`StitchedSequence` (first prompt,
  then everything after it), where each completion token knows the doctor turn that
  generated it, or is an environment token (patient replies, reminders), as TRL's
  ``env_mask`` wants; None when the turns do not stitch, then use the samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from promed_agents.backends.chat_tokens import ChatTokens
from promed_agents.trace import ChatMessage, EpisodeRecord, Role, TurnKind


@dataclass(frozen=True)
class PolicySample:
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    kind: TurnKind
    sig: float | None


@dataclass(frozen=True)
class StitchedSequence:
    """A consultation as one token sequence: ``prompt_ids`` then ``completion_ids``.

    ``turn_index`` has one entry per completion token: the index of the doctor turn that
    generated it (into the episode's doctor turns), or -1 for an environment token
    (patient replies, reminders, the chat template's end-of-turn markers). ``logprobs``
    are the sampling logprobs of policy tokens and 0 elsewhere. ``dropped`` counts sampled
    tokens left out because the next prompt re-renders them differently (see
    :func:`stitch`)."""

    prompt_ids: list[int]
    completion_ids: list[int]
    turn_index: list[int]
    logprobs: list[float]
    dropped: int = 0

    @property
    def policy_mask(self) -> list[int]:
        """1 on the policy's tokens, 0 on the environment's (TRL's ``env_mask``)."""
        return [int(i >= 0) for i in self.turn_index]


def policy_samples(episode: EpisodeRecord) -> list[PolicySample]:
    """The doctor turns of ``episode`` as policy samples (exact token ids and logprobs)."""
    return [PolicySample(prompt_ids=t.prompt_token_ids or [], completion_ids=t.token_ids or [],
                         logprobs=t.logprobs or [], kind=t.kind or TurnKind.INVALID, sig=t.sig)
            for t in episode.turns if t.role is Role.DOCTOR]


def doctor_prompts(episode: EpisodeRecord) -> list[list[ChatMessage]] | None:
    """The conversation each doctor turn of ``episode`` answered (everything before its
    message in the recorded conversation); None when the trace did not record the
    conversation, or it does not hold one message per doctor turn."""
    conversation = episode.doctor_messages
    prompts = [conversation[:k] for k, m in enumerate(conversation)
               if m.role == "assistant" and not m.example]
    doctor = [t for t in episode.turns if t.role is Role.DOCTOR]
    if not conversation or len(prompts) != len(doctor):
        return None
    return prompts


def rendered_samples(episode: EpisodeRecord, tokens: ChatTokens) -> list[PolicySample] | None:
    """The doctor turns of ``episode`` in ``tokens``' model: each prompt rendered with its
    chat template, each turn's text as that model's own reply ending its turn (the way
    the local backend tokenises a proposed question). Logprobs are not known: zeros, so
    these samples are for SFT, never for a policy-gradient ratio. None when the trace
    has no conversation (:func:`doctor_prompts`)."""
    prompts = doctor_prompts(episode)
    if prompts is None:
        return None
    turns = [t for t in episode.turns if t.role is Role.DOCTOR]
    samples = []
    for prompt, turn in zip(prompts, turns, strict=True):
        completion = tokens.turn_ids(turn.text)
        samples.append(PolicySample(
            prompt_ids=tokens.prompt_ids([{"role": m.role, "content": m.content}
                                          for m in prompt]),
            completion_ids=completion, logprobs=[0.0] * len(completion),
            kind=turn.kind or TurnKind.INVALID, sig=turn.sig))
    return samples


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def stitch(samples: Sequence[PolicySample], max_dropped: int = 2) -> StitchedSequence | None:
    """``samples`` as one sequence, or None when it cannot be stitched.

    Each turn's prompt must extend the previous turn's prompt token for token. The
    previous completion is kept up to where the new prompt re-renders it differently: a
    turn stopped at a stop string (the doctor's newline) is re-rendered by the chat
    template with its end-of-turn marker instead, so its last sampled token is not in any
    later context and is dropped (not trained); the re-rendered marker is an environment
    token. More than ``max_dropped`` dropped tokens in a turn (a template that rewrites
    the text itself) gives None."""
    if not samples:
        return None
    context = list(samples[0].prompt_ids)  # tokens before the current turn's completion
    completion: list[int] = []
    turn_index: list[int] = []
    logprobs: list[float] = []
    dropped = 0
    for k, sample in enumerate(samples[1:], start=1):
        previous = samples[k - 1]
        if sample.prompt_ids[: len(context)] != context:
            return None
        rest = sample.prompt_ids[len(context):]
        kept = _common_prefix(previous.completion_ids, rest)
        if len(previous.completion_ids) - kept > max_dropped:
            return None
        dropped += len(previous.completion_ids) - kept
        completion += rest
        turn_index += [k - 1] * kept + [-1] * (len(rest) - kept)
        logprobs += list(previous.logprobs[:kept]) + [0.0] * (len(rest) - kept)
        context = list(sample.prompt_ids)
    last = samples[-1]
    completion += last.completion_ids
    turn_index += [len(samples) - 1] * len(last.completion_ids)
    logprobs += last.logprobs
    return StitchedSequence(list(samples[0].prompt_ids), completion, turn_index, logprobs,
                            dropped)
