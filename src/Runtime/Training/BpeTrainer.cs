using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace PrunerZero.Runtime.Training;

/// <summary>
/// Trains a byte-level BPE vocabulary (GPT-2 style: GPT-2 pre-tokenizer regex, 256 byte symbols, merges by
/// pair frequency) and writes it in Hugging Face layout. Encoding at run time is Hugging Face tokenizers'
/// job; this class only learns the merges, which no library here offers. Ties between equally frequent
/// pairs go to the ordinally smallest pair of strings, so training is deterministic.
/// </summary>
public static class BpeTrainer
{
    public const string Bos = "<s>", Eos = "</s>";
    static readonly Regex Gpt2 = new(ByteLevel.Gpt2Pattern, RegexOptions.Compiled);

    public sealed record Result(List<string> Vocab, List<(string A, string B)> Merges);

    public static Result Train(IEnumerable<string> texts, int vocabSize, IProgress<string>? progress = null)
    {
        int specials = 2;
        if (vocabSize < 256 + specials + 1) throw new PrunerZeroException($"vocabulary size {vocabSize} is too small for byte-level BPE (needs more than {256 + specials})");

        // Unique pre-tokens with counts, as byte-level symbol strings.
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var text in texts)
            foreach (Match m in Gpt2.Matches(text))
            {
                string w = ByteLevel.Encode(Encoding.UTF8.GetBytes(m.Value));
                counts[w] = counts.GetValueOrDefault(w) + 1;
            }

        var symbols = new List<string>();
        var symbolId = new Dictionary<string, int>(StringComparer.Ordinal);
        int Intern(string s)
        {
            if (!symbolId.TryGetValue(s, out var id)) { id = symbols.Count; symbols.Add(s); symbolId[s] = id; }
            return id;
        }
        for (int b = 0; b < 256; b++) Intern(ByteLevel.ByteToChar[b].ToString());

        var words = counts.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => (Syms: kv.Key.Select(ch => symbolId[ch.ToString()]).ToList(), Count: kv.Value)).ToList();
        var pairCount = new Dictionary<(int, int), long>();
        var pairWords = new Dictionary<(int, int), HashSet<int>>();
        void AddPairs(int wi, int sign)
        {
            var (syms, c) = words[wi];
            for (int i = 0; i + 1 < syms.Count; i++)
            {
                var p = (syms[i], syms[i + 1]);
                pairCount[p] = pairCount.GetValueOrDefault(p) + sign * c;
                if (sign > 0)
                {
                    if (!pairWords.TryGetValue(p, out var set)) pairWords[p] = set = [];
                    set.Add(wi);
                }
            }
        }
        for (int wi = 0; wi < words.Count; wi++) AddPairs(wi, +1);

        var merges = new List<(string, string)>();
        int target = vocabSize - specials;
        while (symbols.Count < target)
        {
            (int, int) best = default;
            long bestCount = 0;
            foreach (var (p, c) in pairCount)
            {
                if (c > bestCount || (c == bestCount && c > 0 && Less(p, best)))
                {
                    best = p;
                    bestCount = c;
                }
            }
            if (bestCount <= 0) break;   // nothing left to merge: the vocabulary ends smaller
            string merged = symbols[best.Item1] + symbols[best.Item2];
            int newId = Intern(merged);
            merges.Add((symbols[best.Item1], symbols[best.Item2]));
            foreach (int wi in pairWords[best].ToList())
            {
                var syms = words[wi].Syms;
                bool has = false;
                for (int i = 0; i + 1 < syms.Count; i++) if (syms[i] == best.Item1 && syms[i + 1] == best.Item2) { has = true; break; }
                if (!has) continue;
                AddPairs(wi, -1);
                var next = new List<int>(syms.Count);
                for (int i = 0; i < syms.Count; i++)
                {
                    if (i + 1 < syms.Count && syms[i] == best.Item1 && syms[i + 1] == best.Item2) { next.Add(newId); i++; }
                    else next.Add(syms[i]);
                }
                words[wi] = (next, words[wi].Count);
                AddPairs(wi, +1);
            }
            pairCount.Remove(best);
            pairWords.Remove(best);
            if (merges.Count % 500 == 0) progress?.Report($"tokenizer: {symbols.Count}/{target} symbols");
        }

        bool Less((int, int) a, (int, int) b)
        {
            int c = string.CompareOrdinal(symbols[a.Item1], symbols[b.Item1]);
            return c != 0 ? c < 0 : string.CompareOrdinal(symbols[a.Item2], symbols[b.Item2]) < 0;
        }

        var vocab = new List<string>(symbols) { Bos, Eos };
        return new Result(vocab, merges);
    }

    /// <summary>Writes tokenizer.json, tokenizer_config.json and special_tokens_map.json as HF's tokenizers library does.</summary>
    public static void Save(Result r, string dir, int modelMaxLength)
    {
        Directory.CreateDirectory(dir);
        var vocab = new JsonObject();
        for (int i = 0; i < r.Vocab.Count; i++) vocab[r.Vocab[i]] = i;
        int bos = r.Vocab.IndexOf(Bos), eos = r.Vocab.IndexOf(Eos);
        JsonObject Added(int id, string content) => new()
        {
            ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
            ["normalized"] = false, ["special"] = true,
        };
        var tok = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray(Added(bos, Bos), Added(eos, Eos)),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true },
            ["post_processor"] = new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = Bos, ["type_id"] = 0 } },
                                           new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }),
                ["pair"] = new JsonArray(new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = Bos, ["type_id"] = 0 } },
                                         new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } },
                                         new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "B", ["type_id"] = 1 } }),
                ["special_tokens"] = new JsonObject { [Bos] = new JsonObject { ["id"] = Bos, ["ids"] = new JsonArray(bos), ["tokens"] = new JsonArray(Bos) } },
            },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null, ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false,
                ["vocab"] = vocab,
                ["merges"] = new JsonArray(r.Merges.Select(m => (JsonNode)new JsonArray(m.A, m.B)).ToArray()),
            },
        };
        var opts = new JsonSerializerOptions { WriteIndented = true };
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), tok.ToJsonString(opts));
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), new JsonObject
        {
            ["add_bos_token"] = true, ["add_eos_token"] = false, ["bos_token"] = Bos, ["eos_token"] = Eos,
            ["clean_up_tokenization_spaces"] = false, ["model_max_length"] = modelMaxLength,
            ["tokenizer_class"] = "PreTrainedTokenizerFast",
        }.ToJsonString(opts));
        File.WriteAllText(Path.Combine(dir, "special_tokens_map.json"), new JsonObject { ["bos_token"] = Bos, ["eos_token"] = Eos }.ToJsonString(opts));
    }
}
