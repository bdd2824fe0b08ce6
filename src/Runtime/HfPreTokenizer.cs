using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace PrunerZero.Runtime;

/// <summary>
/// The `pre_tokenizer` of a Hugging Face tokenizer.json, applied as the `tokenizers` library applies it:
/// special (added) tokens are split out of the text first, then every step refines every piece.
/// Steps: `Split` (Regex or String pattern, the five delimiter behaviours, `invert`), `Digits`,
/// `ByteLevel` (its GPT-2 regex when `use_regex`), and a `Sequence` of them. Anything else is refused.
/// Microsoft.ML.Tokenizers' RegexPreTokenizer takes one regex; a sequence such as Digits + ByteLevel
/// (SmolLM) or Split + ByteLevel (LLaMA-3) is not one regex, hence this class.
/// </summary>
public sealed class HfPreTokenizer : PreTokenizer
{
    /// <summary>GPT-2's pattern, which the ByteLevel pre-tokenizer uses when use_regex is true.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    enum Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

    /// <summary>One step: what a match is, and how matches and the gaps between them become pieces.</summary>
    sealed record Step(Regex Pattern, Behavior Behavior, bool Invert);

    readonly List<Step> _steps;
    // Special tokens by first character, longest first, so the longest one at a position wins.
    readonly Dictionary<char, string[]> _special;

    HfPreTokenizer(List<Step> steps, IEnumerable<string> special)
    {
        _steps = steps;
        _special = special.Where(s => s.Length > 0).Distinct().GroupBy(s => s[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(s => s.Length).ToArray());
    }

    /// <summary>Builds the pre-tokenizer of tokenizer.json's `pre_tokenizer` node; `where` names the file in errors.</summary>
    public static HfPreTokenizer FromJson(JsonNode? node, IEnumerable<string> specialTokens, string where)
    {
        var steps = new List<Step>();
        Add(node, steps, where);
        return new HfPreTokenizer(steps, specialTokens);
    }

    static void Add(JsonNode? node, List<Step> steps, string where)
    {
        if (node is null) return;
        if (node is not JsonObject o) throw new PrunerZeroException($"{where}: pre_tokenizer is not an object");
        string type = o["type"]?.GetValue<string>() ?? "";
        switch (type)
        {
            case "Sequence":
                foreach (var p in o["pretokenizers"] as JsonArray ?? throw new PrunerZeroException($"{where}: Sequence pre_tokenizer without pretokenizers"))
                    Add(p, steps, where);
                break;
            case "ByteLevel":
                if (o["add_prefix_space"] is JsonValue aps && aps.GetValue<bool>())
                    throw new PrunerZeroException($"{where}: ByteLevel pre_tokenizer with add_prefix_space = true is not supported");
                if (o["use_regex"] is not JsonValue ur || ur.GetValue<bool>())
                    steps.Add(new Step(new Regex(Gpt2Pattern, RegexOptions.Compiled), Behavior.Isolated, false));
                break;
            case "Digits":
                bool individual = o["individual_digits"] is JsonValue id && id.GetValue<bool>();
                // Rust's char::is_numeric: Unicode categories Nd, Nl and No, which is \p{N}.
                steps.Add(new Step(Numeric, individual ? Behavior.Isolated : Behavior.Contiguous, false));
                break;
            case "Split":
                var pattern = o["pattern"] as JsonObject ?? throw new PrunerZeroException($"{where}: Split pre_tokenizer without pattern");
                Regex rx = pattern["Regex"] is JsonValue r ? new Regex(r.GetValue<string>(), RegexOptions.Compiled)
                    : pattern["String"] is JsonValue s ? new Regex(Regex.Escape(s.GetValue<string>()), RegexOptions.Compiled)
                    : throw new PrunerZeroException($"{where}: Split pattern must be Regex or String");
                string behavior = o["behavior"]?.GetValue<string>() ?? "";
                if (!Enum.TryParse<Behavior>(behavior, out var b))
                    throw new PrunerZeroException($"{where}: Split behavior '{behavior}' is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
                steps.Add(new Step(rx, b, o["invert"] is JsonValue inv && inv.GetValue<bool>()));
                break;
            default:
                throw new PrunerZeroException($"{where}: pre_tokenizer '{type}' is not supported (Sequence of Split, Digits, ByteLevel)");
        }
    }

    static readonly Regex Numeric = new(@"\p{N}", RegexOptions.Compiled);

    /// <summary>HF's find_matches: the piece cut into alternating non-matching gaps and matches (empty matches skipped).</summary>
    static List<(int Start, int End, bool Match)> FindMatches(Regex rx, string text, int start, int length)
    {
        var segs = new List<(int, int, bool)>();
        int prev = start, end = start + length;
        foreach (ValueMatch m in rx.EnumerateMatches(text.AsSpan(start, length)))
        {
            if (m.Length == 0) continue;
            int ms = start + m.Index;
            if (ms > prev) segs.Add((prev, ms, false));
            segs.Add((ms, ms + m.Length, true));
            prev = ms + m.Length;
        }
        if (prev < end) segs.Add((prev, end, false));
        return segs;
    }

    /// <summary>The pieces of one step, by the delimiter behaviour (tokenizers' NormalizedString::split).</summary>
    static IEnumerable<(int Start, int End)> Apply(Step step, string text, int start, int length)
    {
        var segs = FindMatches(step.Pattern, text, start, length);
        if (step.Invert) for (int i = 0; i < segs.Count; i++) segs[i] = (segs[i].Start, segs[i].End, !segs[i].Match);
        var acc = new List<(int Start, int End)>();
        bool previousMatch = false;
        switch (step.Behavior)
        {
            case Behavior.Isolated:
                foreach (var s in segs) acc.Add((s.Start, s.End));
                break;
            case Behavior.Removed:
                foreach (var s in segs) if (!s.Match) acc.Add((s.Start, s.End));
                break;
            case Behavior.Contiguous:
                foreach (var s in segs)
                {
                    if (s.Match == previousMatch && acc.Count > 0) acc[^1] = (acc[^1].Start, s.End);
                    else acc.Add((s.Start, s.End));
                    previousMatch = s.Match;
                }
                break;
            case Behavior.MergedWithPrevious:
                foreach (var s in segs)
                {
                    if (s.Match && !previousMatch && acc.Count > 0) acc[^1] = (acc[^1].Start, s.End);
                    else acc.Add((s.Start, s.End));
                    previousMatch = s.Match;
                }
                break;
            case Behavior.MergedWithNext:
                for (int i = segs.Count - 1; i >= 0; i--)
                {
                    var s = segs[i];
                    if (s.Match && !previousMatch && acc.Count > 0) acc[^1] = (s.Start, acc[^1].End);
                    else acc.Add((s.Start, s.End));
                    previousMatch = s.Match;
                }
                acc.Reverse();
                break;
        }
        return acc.Where(p => p.End > p.Start);
    }

    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text)
    {
        if (string.IsNullOrEmpty(text)) yield break;
        foreach (var (start, length, special) in SplitSpecial(text))
        {
            if (special) { yield return (start, length); continue; }
            IEnumerable<(int Start, int End)> pieces = [(start, start + length)];
            foreach (var step in _steps)
                pieces = pieces.SelectMany(p => Apply(step, text, p.Start, p.End - p.Start)).ToList();
            foreach (var (ps, pe) in pieces) yield return (ps, pe - ps);
        }
    }

    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) => PreTokenize(text.ToString());

    /// <summary>The text cut into runs of ordinary text and whole special tokens (leftmost, then longest).</summary>
    IEnumerable<(int Start, int Length, bool Special)> SplitSpecial(string text)
    {
        int prev = 0;
        if (_special.Count > 0)
        {
            for (int i = 0; i < text.Length;)
            {
                string? hit = null;
                if (_special.TryGetValue(text[i], out var candidates))
                    foreach (var s in candidates)
                        if (string.CompareOrdinal(text, i, s, 0, s.Length) == 0) { hit = s; break; }
                if (hit is null) { i++; continue; }
                if (i > prev) yield return (prev, i - prev, false);
                yield return (i, hit.Length, true);
                i += hit.Length;
                prev = i;
            }
        }
        if (prev < text.Length) yield return (prev, text.Length - prev, false);
    }
}
