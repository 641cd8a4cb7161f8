"""Comparators (RFC 4790 as RFC 5228 §2.7.3 names them) and match types (RFC 5228 §2.7.1,
RFC 5231 relational), with the match variables of RFC 5229 §3.2.

``:matches`` is a wildcard match ("*" any run, "?" one character, "\\" escapes) done by a linear
scan with one backtrack point per "*" run, never a regular expression built from the script: a
hostile pattern costs at most len(pattern) x len(value) steps.
"""

COMPARATORS = ("i;ascii-casemap", "i;octet", "i;ascii-numeric")
RELATIONS = ("gt", "ge", "lt", "le", "eq", "ne")


def fold(comparator, value):
    """*value* as *comparator* compares it: i;ascii-casemap folds ASCII letters only."""
    if comparator == "i;ascii-casemap":
        return value.translate(_ASCII_LOWER)
    return value


_ASCII_LOWER = {code: code + 32 for code in range(ord("A"), ord("Z") + 1)}


def numeric(value):
    """i;ascii-numeric (RFC 4790 §9.1): the leading digits as a number; None (positive
    infinity) when there are none."""
    digits = len(value) - len(value.lstrip("0123456789"))
    return int(value[:digits]) if digits else None


def compare(comparator, relation, value, key):
    """RFC 5231 :value — *value* *relation* *key* under *comparator*."""
    if comparator == "i;ascii-numeric":
        left, right = numeric(value), numeric(key)
        # None is larger than every number and equal to itself (RFC 4790 §9.1.1).
        order = 0 if left == right else 1 if left is None else -1 if right is None else (left > right) - (left < right)
    else:
        left, right = fold(comparator, value), fold(comparator, key)
        order = (left > right) - (left < right)
    return {"gt": order > 0, "ge": order >= 0, "lt": order < 0, "le": order <= 0, "eq": order == 0,
            "ne": order != 0}[relation]


def matches(comparator, value, pattern):
    """RFC 5228 §2.7.1 :matches; the texts matched by each wildcard (RFC 5229 §3.2's ${1}...),
    or None when it does not match."""
    # Folding keeps every character's place (ASCII letters only), so the spans found in the
    # folded text are cut from the value as it is (RFC 5229 §3.2: the matched substrings).
    folded, pattern = fold(comparator, value), fold(comparator, pattern)
    tokens = []                      # ("*",) ("?",) or ("=", character)
    index = 0
    while index < len(pattern):
        character = pattern[index]
        if character == "\\" and index + 1 < len(pattern):
            index += 1
            tokens.append(("=", pattern[index]))
        elif character in "*?":
            tokens.append((character,))
        else:
            tokens.append(("=", character))
        index += 1
    captured = _match(tokens, folded)
    return None if captured is None else [value[start:end] for start, end in captured]


def _match(tokens, value):
    """Spans of *value* matched by the wildcards of *tokens*, or None.  Backtracking goes to
    the last "*" only (the classic glob algorithm), so the cost is bounded by the product of
    the lengths, and each "*" takes as little as it can, as RFC 5229 §3.2 asks."""
    spans = [None] * len(tokens)
    t = v = 0
    star = None                       # (token index of the last "*", value index it resumes at)
    saved = None
    while v < len(value) or t < len(tokens):
        if t < len(tokens):
            token = tokens[t]
            if token[0] == "*":
                spans[t] = (v, v)
                star, saved = (t, v), list(spans)
                t += 1
                continue
            if v < len(value) and (token[0] == "?" or token[1] == value[v]):
                if token[0] == "?":
                    spans[t] = (v, v + 1)
                t += 1
                v += 1
                continue
        if star is None or star[1] >= len(value):
            return None
        # Let the last "*" take one more character, and go on after it.
        t, v = star[0], star[1] + 1
        spans = saved
        spans[t] = (spans[t][0], v)
        star, saved = (t, v), list(spans)
        t += 1
    return [span for token, span in zip(tokens, spans) if token[0] != "="]
