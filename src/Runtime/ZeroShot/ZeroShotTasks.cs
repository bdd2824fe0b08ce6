using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using ICSharpCode.SharpZipLib.BZip2;

namespace PrunerZero.Runtime.ZeroShot;

/// <summary>
/// Readers for the zero-shot tasks that pruning papers report, with the prompts, answer strings and gold
/// labels of lm-evaluation-harness v0.4.x (the same formats as the v0.3 `hf-causal-experimental` harness that
/// Wanda and Pruner-Zero ran). Each reader takes the task's real file format; README.md (the zeroshot verb) documents each task.
/// Every multiple-choice continuation is " " + choice (the harness's target_delimiter).
/// </summary>
public static partial class ZeroShotTasks
{
    /// <summary>The tasks, in the order of the Wanda / Pruner-Zero tables.</summary>
    public static readonly string[] All = ["boolq", "rte", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa"];

    /// <summary>The official HellaSwag validation file, where a user has put it (not shipped).</summary>
    public const string HellaSwagOfficial = "hellaswag/hellaswag_val.jsonl";
    /// <summary>The shipped derived text rendering of HellaSwag validation (not the official format).</summary>
    public const string HellaSwagDerived = "hellaswag/derived_not_official/hellaswag_val_full.txt.bz2";

    /// <summary>A task's file under the data folder (data/zeroshot in the repository).</summary>
    public static string DefaultPath(string dataDir, string name) => name switch
    {
        "boolq" => Path.Combine(dataDir, "boolq/val.jsonl"),
        "rte" => Path.Combine(dataDir, "rte/val.jsonl"),
        "winogrande" => Path.Combine(dataDir, "winogrande/dev.jsonl"),
        "arc_easy" => Path.Combine(dataDir, "arc_easy/ARC-Easy-Test.jsonl"),
        "arc_challenge" => Path.Combine(dataDir, "arc_challenge/ARC-Challenge-Test.jsonl"),
        "openbookqa" => Path.Combine(dataDir, "openbookqa/test.jsonl"),
        "hellaswag" => File.Exists(Path.Combine(dataDir, HellaSwagOfficial))
            ? Path.Combine(dataDir, HellaSwagOfficial) : Path.Combine(dataDir, HellaSwagDerived),
        _ => throw new PrunerZeroException($"unknown zero-shot task '{name}' (known: {string.Join(", ", All)})"),
    };

    /// <summary>
    /// Loads tasks by name, each `name` or `name=PATH` (a file in that task's format; for hellaswag a .jsonl is
    /// read as the official format, anything else as the derived text). Names are case-insensitive; duplicates are refused.
    /// </summary>
    public static IReadOnlyList<ZeroShotTask> Load(string dataDir, IEnumerable<string> names)
    {
        var tasks = new List<ZeroShotTask>();
        foreach (var spec in names.Select(s => s.Trim()).Where(s => s.Length > 0))
        {
            int eq = spec.IndexOf('=');
            string name = (eq < 0 ? spec : spec[..eq]).Trim().ToLowerInvariant();
            string path = eq < 0 ? DefaultPath(dataDir, name) : spec[(eq + 1)..].Trim();
            if (tasks.Any(t => t.Name == name)) throw new PrunerZeroException($"zero-shot task '{name}' is listed twice");
            tasks.Add(LoadFile(name, path));
        }
        if (tasks.Count == 0) throw new PrunerZeroException("no zero-shot tasks given");
        return tasks;
    }

    /// <summary>Reads one task's file in its format.</summary>
    public static ZeroShotTask LoadFile(string name, string path)
    {
        PathSafety.RequireRegularFile(path, $"zero-shot data for '{name}'");
        if (!File.Exists(path)) throw new PrunerZeroException($"zero-shot data for '{name}' not found: {path}");
        return name switch
        {
            "boolq" => ReadBoolQ(path),
            "rte" => ReadRte(path),
            "winogrande" => ReadWinoGrande(path),
            "arc_easy" or "arc_challenge" => ReadArc(path, name),
            "openbookqa" => ReadOpenBookQA(path),
            "hellaswag" => path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase) ? ReadHellaSwag(path) : ReadHellaSwagDerived(path),
            _ => throw new PrunerZeroException($"unknown zero-shot task '{name}' (known: {string.Join(", ", All)})"),
        };
    }

    // ---- tasks ------------------------------------------------------------------------------------

    /// <summary>BoolQ (SuperGLUE jsonl: question, passage, idx, label true/false): "{passage}\nQuestion: {question}?\nAnswer:", " no" / " yes".</summary>
    public static ZeroShotTask ReadBoolQ(string path)
    {
        var items = JsonLines(path, (o, at) =>
        {
            string ctx = $"{Str(o, "passage", at)}\nQuestion: {Str(o, "question", at)}?\nAnswer:";
            bool label = Bool(o, "label", at);
            return new ZeroShotItem(Id(o, "idx"), SameContext(ctx, "no", "yes"), label ? 1 : 0);
        });
        return Task("boolq", path, items, accNorm: false);
    }

    /// <summary>
    /// RTE (SuperGLUE jsonl: premise, hypothesis, label "entailment"/"not_entailment"; GLUE's sentence1/sentence2
    /// with label 0/1 also read): "{premise}\nQuestion: {hypothesis} True or False?\nAnswer:", " True" / " False";
    /// entailment is True (index 0), as in the harness's glue/rte.
    /// </summary>
    public static ZeroShotTask ReadRte(string path)
    {
        var items = JsonLines(path, (o, at) =>
        {
            string premise = o.TryGetProperty("premise", out _) ? Str(o, "premise", at) : Str(o, "sentence1", at);
            string hypothesis = o.TryGetProperty("hypothesis", out _) ? Str(o, "hypothesis", at) : Str(o, "sentence2", at);
            var l = Prop(o, "label", at);
            int gold = l.ValueKind switch
            {
                JsonValueKind.String when l.GetString() == "entailment" => 0,
                JsonValueKind.String when l.GetString() == "not_entailment" => 1,
                JsonValueKind.Number when l.GetInt32() is 0 or 1 => l.GetInt32(),
                _ => throw new PrunerZeroException($"{at}: RTE label must be entailment/not_entailment or 0/1, got {l.GetRawText()}"),
            };
            return new ZeroShotItem(Id(o, "idx"), SameContext($"{premise}\nQuestion: {hypothesis} True or False?\nAnswer:", "True", "False"), gold);
        });
        return Task("rte", path, items, accNorm: false);
    }

    /// <summary>
    /// WinoGrande (qID, sentence, option1, option2, answer "1"/"2"), partial scoring: for each option the context is
    /// the sentence up to the blank with the option filled in, the continuation is " " + the rest after the blank
    /// (stripped); both options score the same continuation.
    /// </summary>
    public static ZeroShotTask ReadWinoGrande(string path)
    {
        var items = JsonLines(path, (o, at) =>
        {
            string sentence = Str(o, "sentence", at);
            int blank = sentence.IndexOf('_');
            if (blank < 0) throw new PrunerZeroException($"{at}: WinoGrande sentence has no '_' blank");
            string target = " " + sentence[(blank + 1)..].Trim();
            var choices = new[] { Str(o, "option1", at), Str(o, "option2", at) }
                .Select(opt => { string ctx = sentence[..blank] + opt; return new ZeroShotChoice(ctx, target, ctx); })
                .ToList();
            string answer = Str(o, "answer", at);
            int gold = answer switch
            {
                "1" => 0,
                "2" => 1,
                _ => throw new PrunerZeroException($"{at}: WinoGrande answer must be \"1\" or \"2\", got '{answer}' (the test split has no labels)"),
            };
            return new ZeroShotItem(Id(o, "qID"), choices, gold);
        });
        return Task("winogrande", path, items, accNorm: false);
    }

    /// <summary>ARC (official jsonl: question.stem, question.choices[text,label], answerKey): "Question: {stem}\nAnswer:", " {text}".</summary>
    public static ZeroShotTask ReadArc(string path, string name)
    {
        var items = JsonLines(path, (o, at) =>
        {
            var (stem, texts, labels) = StemAndChoices(o, at);
            return new ZeroShotItem(Id(o, "id"), SameContext($"Question: {stem}\nAnswer:", texts), GoldIndex(labels, Str(o, "answerKey", at), at));
        });
        return Task(name, path, items, accNorm: true);
    }

    /// <summary>OpenBookQA (official Main jsonl: question.stem, question.choices, answerKey): context = the stem, " {text}".</summary>
    public static ZeroShotTask ReadOpenBookQA(string path)
    {
        var items = JsonLines(path, (o, at) =>
        {
            var (stem, texts, labels) = StemAndChoices(o, at);
            return new ZeroShotItem(Id(o, "id"), SameContext(stem, texts), GoldIndex(labels, Str(o, "answerKey", at).TrimStart(), at));
        });
        return Task("openbookqa", path, items, accNorm: true);
    }

    /// <summary>
    /// HellaSwag in the official jsonl format (activity_label, ctx_a, ctx_b, endings, label):
    /// context = preprocess("{activity_label}: {ctx_a} {ctx_b.capitalize()}"), choices " " + preprocess(ending).
    /// </summary>
    public static ZeroShotTask ReadHellaSwag(string path)
    {
        var items = JsonLines(path, (o, at) =>
        {
            string ctx = Str(o, "ctx_a", at) + " " + PyCapitalize(Str(o, "ctx_b", at));
            string query = HellaSwagPreprocess(Str(o, "activity_label", at) + ": " + ctx);
            var endings = Prop(o, "endings", at);
            if (endings.ValueKind != JsonValueKind.Array) throw new PrunerZeroException($"{at}: 'endings' must be a list");
            var texts = endings.EnumerateArray().Select(e => HellaSwagPreprocess(e.GetString() ?? "")).ToArray();
            var l = Prop(o, "label", at);
            int gold = l.ValueKind == JsonValueKind.Number ? l.GetInt32()
                : int.TryParse(l.GetString(), out var g) ? g : throw new PrunerZeroException($"{at}: HellaSwag label must be 0-3 (the test split has no labels)");
            if (gold < 0 || gold >= texts.Length) throw new PrunerZeroException($"{at}: label {gold} outside the {texts.Length} endings");
            return new ZeroShotItem(Id(o, "ind"), SameContext(query, texts), gold);
        });
        return Task("hellaswag", path, items, accNorm: true);
    }

    /// <summary>
    /// The derived HellaSwag text (klosax/hellaswag_text_data, from the official validation file): 6 lines per item,
    /// "{activity_label}: {ctx}" / gold 0-3 / four endings, already cleaned. The harness's preprocess is applied
    /// again (it is idempotent on this text and removes the remaining "[...]" spans as the harness would); ctx_b's
    /// capitalisation cannot be restored, so prompts differ slightly from the harness's. Labelled as derived.
    /// A .bz2 file is decompressed on the fly.
    /// </summary>
    public static ZeroShotTask ReadHellaSwagDerived(string path)
    {
        var lines = ReadLines(path);
        while (lines.Count > 0 && lines[^1].Length == 0) lines.RemoveAt(lines.Count - 1);
        if (lines.Count == 0 || lines.Count % 6 != 0)
            throw new PrunerZeroException($"{path}: derived HellaSwag text must have 6 lines per item (context, label, 4 endings); got {lines.Count} lines");
        var items = new List<ZeroShotItem>(lines.Count / 6);
        for (int i = 0; i < lines.Count; i += 6)
        {
            if (!int.TryParse(lines[i + 1].Trim(), out int gold) || gold < 0 || gold > 3)
                throw new PrunerZeroException($"{path}:{i + 2}: expected the gold label 0-3, got '{lines[i + 1]}'");
            var texts = lines.Skip(i + 2).Take(4).Select(HellaSwagPreprocess).ToArray();
            items.Add(new ZeroShotItem((i / 6).ToString(), SameContext(HellaSwagPreprocess(lines[i]), texts), gold));
        }
        return new ZeroShotTask
        {
            Name = "hellaswag", Label = "hellaswag (derived, not official)", ReportsAccNorm = true, Derived = true,
            Source = path, Items = items,
        };
    }

    // ---- the harness's text helpers -------------------------------------------------------------------

    /// <summary>
    /// The harness's HellaSwag preprocess: strip; " [title]" becomes ". "; every "[...]" span is removed
    /// (non-greedy); then one pass replacing "  " with " " (so three spaces become two, as Python's replace does).
    /// </summary>
    public static string HellaSwagPreprocess(string text)
    {
        text = PyStrip(text);
        text = text.Replace(" [title]", ". ");
        text = Brackets().Replace(text, "");
        return text.Replace("  ", " ");
    }

    [GeneratedRegex(@"\[.*?\]")]
    private static partial Regex Brackets();

    /// <summary>Python's str.capitalize(): the first character upper-cased, the rest lower-cased.</summary>
    public static string PyCapitalize(string s) =>
        s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    /// <summary>Python's str.strip() (whitespace as .NET's char.IsWhiteSpace, which matches Python's for text).</summary>
    static string PyStrip(string s) => s.Trim();

    /// <summary>Python's len(str): Unicode code points, the length acc_norm divides by.</summary>
    public static int PyLen(string s)
    {
        int n = 0;
        foreach (var _ in s.EnumerateRunes()) n++;
        return n;
    }

    // ---- plumbing --------------------------------------------------------------------------------------

    static ZeroShotTask Task(string name, string path, List<ZeroShotItem> items, bool accNorm)
    {
        if (items.Count == 0) throw new PrunerZeroException($"{path}: no items");
        return new ZeroShotTask { Name = name, Label = name, ReportsAccNorm = accNorm, Source = path, Items = items };
    }

    static List<ZeroShotChoice> SameContext(string context, params string[] choices) =>
        choices.Select(c => new ZeroShotChoice(context, " " + c, c)).ToList();

    static (string Stem, string[] Texts, string[] Labels) StemAndChoices(JsonElement o, string at)
    {
        var q = Prop(o, "question", at);
        if (q.ValueKind == JsonValueKind.Object)   // official ARC / OpenBookQA layout
        {
            var choices = Prop(q, "choices", at);
            if (choices.ValueKind != JsonValueKind.Array) throw new PrunerZeroException($"{at}: question.choices must be a list");
            var list = choices.EnumerateArray().ToList();
            return (Str(q, "stem", at), list.Select(c => Str(c, "text", at)).ToArray(), list.Select(c => Str(c, "label", at)).ToArray());
        }
        // Hugging Face layout: question (string) or question_stem, choices {text: [], label: []}
        string stem = q.ValueKind == JsonValueKind.String ? q.GetString()! : Str(o, "question_stem", at);
        var ch = Prop(o, "choices", at);
        var texts = Prop(ch, "text", at).EnumerateArray().Select(e => e.GetString() ?? "").ToArray();
        var labels = Prop(ch, "label", at).EnumerateArray().Select(e => e.GetString() ?? "").ToArray();
        return (stem, texts, labels);
    }

    static int GoldIndex(string[] labels, string key, string at)
    {
        int i = Array.IndexOf(labels, key);
        if (i < 0) throw new PrunerZeroException($"{at}: answerKey '{key}' is not among the choice labels [{string.Join(", ", labels)}]");
        return i;
    }

    static List<ZeroShotItem> JsonLines(string path, Func<JsonElement, string, ZeroShotItem> read)
    {
        var items = new List<ZeroShotItem>();
        int lineNo = 0;
        foreach (var line in ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            string at = $"{path}:{lineNo}";
            JsonDocument doc;
            try { doc = JsonDocument.Parse(line); }
            catch (JsonException e) { throw new PrunerZeroException($"{at}: not valid JSON ({e.Message})"); }
            using (doc)
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new PrunerZeroException($"{at}: expected a JSON object per line");
                items.Add(read(doc.RootElement, at));
            }
        }
        return items;
    }

    static List<string> ReadLines(string path)
    {
        try
        {
            using Stream file = File.OpenRead(path);
            using Stream s = path.EndsWith(".bz2", StringComparison.OrdinalIgnoreCase) ? new BZip2InputStream(file) : file;
            using var reader = new StreamReader(s, Encoding.UTF8);
            var lines = new List<string>();
            long chars = 0;
            while (reader.ReadLine() is { } l)
            {
                if ((chars += l.Length + 1) > TextData.MaxTextBytes)
                    throw new PrunerZeroException($"{path}: more than {PathSafety.Bound(TextData.MaxTextBytes)} of text, the most a text input may have; cut it into a smaller file");
                lines.Add(l);
            }
            return lines;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ICSharpCode.SharpZipLib.SharpZipBaseException)
        {
            throw new PrunerZeroException($"{path}: cannot read ({e.Message})");
        }
    }

    static JsonElement Prop(JsonElement o, string name, string at) =>
        o.ValueKind == JsonValueKind.Object && o.TryGetProperty(name, out var v) ? v : throw new PrunerZeroException($"{at}: missing field '{name}'");

    static string Str(JsonElement o, string name, string at)
    {
        var v = Prop(o, name, at);
        return v.ValueKind == JsonValueKind.String ? v.GetString()! : throw new PrunerZeroException($"{at}: field '{name}' must be a string");
    }

    static bool Bool(JsonElement o, string name, string at)
    {
        var v = Prop(o, name, at);
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.String when v.GetString() is "true" or "false" => v.GetString() == "true",   // OpenCompass's stringified copy
            JsonValueKind.Number when v.GetInt32() is 0 or 1 => v.GetInt32() == 1,                     // Hugging Face super_glue
            _ => throw new PrunerZeroException($"{at}: field '{name}' must be true or false"),
        };
    }

    static string Id(JsonElement o, string name) =>
        o.TryGetProperty(name, out var v) ? (v.ValueKind == JsonValueKind.String ? v.GetString()! : v.GetRawText()) : "";
}
