"""Synthetic chat prompts with the exact token counts of trace rows.

Traces carry token counts, not text, so a replay needs prompts made up to
size. The text is filler built from a vocabulary of common words that each
encode to one token with a leading space (`` data``, `` book``). The
pre-tokenization rules of ``cl100k_base`` and ``o200k_base`` split text before
every space-led word, and BPE never merges across those splits. So a run of
``n`` such words encodes to exactly ``n`` tokens, and texts can be
concatenated and cut at word boundaries without re-encoding them.

Filler is cut from one long random run of words, the pool, built once per
encoding: filler for a key is a sequence of 128-word segments of the pool at
offsets hashed from the key, so making a prompt costs a few string slices
instead of a random draw per token.

Mooncake rows name their prompt's 512-token blocks by id. Each block's text is
a deterministic function of its id, so rows that share leading ids share a
token-identical prompt prefix, as the original traffic did, and a replay
exercises provider prompt caching the way that traffic would have.
"""

from __future__ import annotations

import hashlib
import struct
from array import array
from dataclasses import dataclass
from functools import cache
from itertools import accumulate

from thrifty.errors import TokenizerError
from thrifty.tokens import count_chat_messages, encoding_name_for_model, get_encoding
from thrifty.traces.rows import BLOCK_TOKENS, TraceRow

# Common English words, each one token after a space in cl100k_base and
# o200k_base. An encoding's vocabulary is the first 256 of them that it encodes
# as one token, so each byte of a hash digest picks one word.
_FILLER_WORDS = """
able acid aged also area army away baby back ball band bank base bath bear beat been bell
belt best bill bird blow blue boat body bone book born both bowl bulk burn bush busy call
calm came camp card care case cash cast cell chat chip city club coal coat code cold come
cook cool cope copy core cost crew crop dark data date dawn days deal dear deep desk dial
diet disc disk does done door dose down draw drew drop dual dust duty each earn ease east
easy edge else even ever exit face fact fail fair fall farm fast fate feed feel feet fell
felt file fill film find fine fire firm fish five flat flow food foot form fort four free
from fuel full fund gain game gate gave gear gene gift give glad goal goes gold golf gone
good gray grew grow hair half hall hand hang hard have head hear heat held help here high
hill hire hold hole home hope host hour huge hung idea inch into iron item join jump just
keen keep kept kind king knee knew know lack laid lake land lane last late lead left less
life lift like line link list live load loan lock logo long look lose loss lost love luck
made mail main make male many mark mass meal mean meet menu mere mile milk mill mind mine
miss mode mood moon more most move much must name navy near neck need news next nice nine
none nose note okay once only onto open oral over pace pack page paid pair palm park part
pass past path peak pick pink pipe plan play plot plug plus poll pool poor port post pull
pure push race rail rain rank rare rate read real rear rely rent rest rice rich ride ring
rise risk road rock role roll roof room root rose rule safe said sake sale salt same sand
save seat seed seek seem seen self sell send sent ship shop show side sign site size skin
slip slow snow soft soil sold sole some song soon sort spot star stay step stop such suit
sure take tale talk tall tank tape task team tell tend term test text than that them then
they thin this thus till time tiny told tone took tool tour town tree trip true tune turn
twin type unit upon used user vary vast very view vote wage wait wake walk wall want ward
warm wash wave ways wear week well went were west what when wide wild will wind wine wing
wire wise wish with wood word wore work yard year your zero zone
"""

_VOCABULARY_SIZE = 256

# The pool's 2**18 words are 1.3 MB of text and 1 MB of word offsets. A block
# is four segments, so two different blocks get the same text only if all four
# segment offsets collide.
_POOL_WORDS = 2**18
_SEGMENT_WORDS = 128
_POOL_SEED = b"thrifty:filler-pool"


@dataclass(frozen=True, slots=True)
class ChatPrompt:
    """A chat request made up for one trace row.

    ``input_tokens`` is what ``count_chat_messages(messages, model)`` returns:
    the row's input count, or the chat template overhead for rows smaller than it.
    """

    text: str
    max_tokens: int
    input_tokens: int

    @property
    def messages(self) -> list[dict[str, str]]:
        """The request's messages: one user message holding ``text``."""
        return [{"role": "user", "content": self.text}]


class FillerPool:
    """A long random run of one-token words that filler is sliced from."""

    def __init__(self, words: tuple[str, ...]) -> None:
        choices = hashlib.shake_256(_POOL_SEED).digest(_POOL_WORDS)
        pool_words = [words[index] for index in choices]
        self.text = "".join(pool_words)
        # starts[i] is the character offset of word i; the last entry is the end.
        self.starts = array("I", accumulate((len(word) for word in pool_words), initial=0))

    def words(self, first: int, count: int) -> str:
        """Return ``count`` pool words starting at word ``first``."""
        return self.text[self.starts[first] : self.starts[first + count]]


class PromptBuilder:
    """Build chat prompts whose token counts equal trace rows' counts for ``model``.

    Block text depends only on ``seed`` and the block id. Rows without blocks
    get filler seeded by ``seed`` and the row's line number, so rows with
    different line numbers do not share a prefix. A second replay with another
    ``seed`` does not reuse the provider's prompt cache from the first.
    """

    def __init__(self, model: str, *, seed: str = "thrifty") -> None:
        self.model = model
        self.seed = seed
        self.overhead = count_chat_messages([{"role": "user", "content": ""}], model)
        self._pool = filler_pool(encoding_name_for_model(model))

    def build(self, row: TraceRow) -> ChatPrompt:
        """Build the prompt for ``row``: its input count and ``max_tokens`` of at least 1."""
        content_tokens = max(row.input_tokens - self.overhead, 0)
        if row.prefix_blocks:
            text = self._blocks_text(row, content_tokens)
        else:
            text = self.filler(content_tokens, f"row:{row.line}")
        return ChatPrompt(
            text=text,
            max_tokens=max(row.output_tokens, 1),
            input_tokens=self.overhead + content_tokens,
        )

    def block_text(self, block_id: int) -> str:
        """Return the text of one prefix block: exactly 512 tokens."""
        return self.filler(BLOCK_TOKENS, f"block:{block_id}")

    def filler(self, tokens: int, key: str) -> str:
        """Return filler of exactly ``tokens`` tokens, a deterministic function of ``key``.

        Filler for fewer tokens is a prefix of filler for more under the same key.
        """
        segments = -(-tokens // _SEGMENT_WORDS)
        # SHAKE-256 yields as many pseudo-random bytes as asked, the same on
        # every platform; each big-endian 32-bit word picks one segment.
        digest = hashlib.shake_256(f"{self.seed}:{key}".encode()).digest(4 * segments)
        parts = []
        remaining = tokens
        for value in struct.unpack(f">{segments}I", digest):
            count = min(remaining, _SEGMENT_WORDS)
            parts.append(self._pool.words(value % (_POOL_WORDS - _SEGMENT_WORDS + 1), count))
            remaining -= count
        return "".join(parts)

    def _blocks_text(self, row: TraceRow, content_tokens: int) -> str:
        # The blocks fill the prompt in order: the last one is cut when the
        # row has fewer tokens, and row filler pads it when the row has more.
        blocks = row.prefix_blocks
        whole, rest = divmod(content_tokens, BLOCK_TOKENS)
        parts = [self.block_text(block_id) for block_id in blocks[:whole]]
        if whole < len(blocks):
            parts.append(self.filler(rest, f"block:{blocks[whole]}"))
        else:
            padding = content_tokens - len(blocks) * BLOCK_TOKENS
            parts.append(self.filler(padding, f"row:{row.line}"))
        return "".join(parts)


@cache
def filler_pool(encoding_name: str) -> FillerPool:
    """Return the filler pool of an encoding, built on first use."""
    return FillerPool(filler_words(encoding_name))


@cache
def filler_words(encoding_name: str) -> tuple[str, ...]:
    """Return the filler vocabulary for an encoding: 256 space-led words of one token each."""
    encoding = get_encoding(encoding_name)
    words = [
        f" {word}"
        for word in _FILLER_WORDS.split()
        if len(encoding.encode(f" {word}", disallowed_special=())) == 1
    ]
    if len(words) < _VOCABULARY_SIZE:
        raise TokenizerError(
            f"encoding '{encoding_name}' encodes only {len(words)} filler words as one "
            f"token; prompt synthesis needs {_VOCABULARY_SIZE}"
        )
    return tuple(words[:_VOCABULARY_SIZE])
