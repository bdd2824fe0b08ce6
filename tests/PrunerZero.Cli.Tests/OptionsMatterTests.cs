using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using CommandLine;
using Microsoft.Data.Sqlite;
using PrunerZero.Runtime.Tests;

namespace PrunerZero.Cli.Tests;

/// <summary>
/// Every option every verb accepts changes what the verb does. The verbs and their options are enumerated from the
/// parser's own attributes ([Verb] classes, their [Option] properties, inherited ones included); each (verb, option)
/// needs an entry in <see cref="Table"/> saying how it is proven to matter: the verb run twice on the tiny test
/// checkpoint (with and without the option, or with two values) and the output (stdout, the files written, the stored
/// run identity of a search) compared, or, for a costly option, the plan object the verb builds from its options
/// compared. An option without an entry fails the test, so no option can be added that silently does nothing.
/// </summary>
public class OptionsMatterTests : TorchGuarded
{
    sealed record Env(string Model, string Model2, string Wiki, string Wiki2, string Calib, string Calib2, string Cache, string Lib, string ZsData)
    {
        /// <summary>The pruning verbs' shared data options, stride sampling (no seed), on the tiny checkpoint.</summary>
        public string[] Common => ["--model", Model, "--calib", Calib, "--cache", Cache, "--nsamples", "4", "--seqlen", "32", "--calib-sampling", "stride"];
        /// <summary>Common without one option (and its value).</summary>
        public string[] CommonWithout(string flag)
        {
            var c = Common.ToList();
            int i = c.IndexOf(flag);
            c.RemoveRange(i, 2);
            return [.. c];
        }
    }

    static Env Setup()
    {
        var s = PipelineTests.Setup();
        string dir = TestCheckpoints.TempDir("options");
        string wiki2 = Path.Combine(dir, "other.raw");
        File.WriteAllText(wiki2, string.Concat(Enumerable.Range(0, 50).Select(i => $" = Part {i} = \n \n A {i} red cat sat on {i * 3} green mats near the river . \n")));
        string calib2 = Path.Combine(dir, "calib2.txt");
        File.WriteAllText(calib2, string.Concat(Enumerable.Range(0, 50).Select(i => $"Numbers {i} and {i * 11} walk into {i % 7} bars, then leave quietly.\n")));
        string lib = Path.Combine(dir, "lib.txt");
        File.WriteAllLines(lib, ["magnitude", "wanda", "pruner-zero"]);
        File.WriteAllLines(lib + ".2", ["magnitude", "mul(W, X)"]);
        // A zero-shot data folder whose boolq has only its first two items.
        string zs = Path.Combine(dir, "zs", "boolq");
        Directory.CreateDirectory(zs);
        File.WriteAllLines(Path.Combine(zs, "val.jsonl"), File.ReadLines(Defaults.Find("data/zeroshot/boolq/val.jsonl")).Take(2));
        return new Env(s.Model, TestCheckpoints.Write(TestCheckpoints.Config(), seed: 29), s.Wiki, wiki2, s.Calib, calib2, s.Cache, lib, Path.Combine(dir, "zs"));
    }

    /// <summary>Proves one option matters; returns null when it does, else why not.</summary>
    delegate string? Check(Env e, Runs r);

    /// <summary>Runs of the verbs, fingerprinted; a baseline is run once (and twice to prove it is deterministic).</summary>
    sealed class Runs(Env env)
    {
        readonly Dictionary<string, string> _memo = new();

        public string Fingerprint(string[] args)
        {
            string key = string.Join('\u0001', args);
            if (_memo.TryGetValue(key, out var f)) return f;
            return _memo[key] = Run(args);
        }

        /// <summary>A fresh run (never memoised).</summary>
        public string Run(string[] args)
        {
            string outDir = TestCheckpoints.TempDir("opt-run");
            var real = args.Select(a => a.Replace("{OUT}", outDir).Replace("{MODEL2}", env.Model2).Replace("{ZS}", env.ZsData).Replace("{WIKI}", env.Wiki)).ToArray();
            var (exit, stdout, err) = CliRunner.Run(real);
            if (exit != 0) throw new Xunit.Sdk.XunitException($"prunerzero {string.Join(' ', real)}: exit {exit}: {err}");
            var sb = new StringBuilder().Append(Normalize(args[0] == "bench" ? stdout.Split('\n')[0] : stdout, outDir)).Append('\n');
            foreach (var file in Directory.EnumerateFiles(outDir, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            {
                string rel = Path.GetRelativePath(outDir, file);
                string ext = Path.GetExtension(file);
                if (rel.Contains(".db") || ext is ".png" or ".lock" or ".tmp") continue;
                string content = ext is ".json" or ".md" or ".csv" or ".txt" or ".jsonl"
                    ? Normalize(File.ReadAllText(file), outDir) : Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)));
                sb.Append(rel).Append(": ").Append(content).Append('\n');
            }
            // The stored identity of a search run.
            foreach (var db in Directory.EnumerateFiles(outDir, "search.db", SearchOption.AllDirectories))
            {
                using var c = new SqliteConnection($"Data Source={db};Mode=ReadOnly;Pooling=False");
                c.Open();
                using var cmd = c.CreateCommand();
                cmd.CommandText = "SELECT key, value FROM params ORDER BY key";
                using var rd = cmd.ExecuteReader();
                while (rd.Read()) sb.Append("param ").Append(rd.GetString(0)).Append('=').Append(Normalize(rd.GetString(1), outDir)).Append('\n');
            }
            return sb.ToString();
        }

        /// <summary>Without the folder's own name and the timings, which differ from run to run.</summary>
        static string Normalize(string text, string outDir)
        {
            text = text.Replace(outDir, "{OUT}");
            text = Regex.Replace(text, "\"[a-z_]*(seconds|second|_s)\":\\s*[-0-9.eE+]+", "\"#\":#");
            text = Regex.Replace(text, @"\b\d+(\.\d+)?\s?(s|ms|min)\b", "#s");
            text = Regex.Replace(text, @",\d+\.\d{3}(,|$)", ",#$1", RegexOptions.Multiline);   // CSV seconds
            return text;
        }
    }

    /// <summary>A and B run; their fingerprints must differ (both must succeed).</summary>
    static Check Differs(Func<Env, string[]> a, Func<Env, string[]> b) => (e, r) =>
    {
        string fa = r.Fingerprint(a(e)), fb = r.Fingerprint(b(e));
        return fa == fb ? $"same output and identity for\n  {string.Join(' ', a(e))}\n  {string.Join(' ', b(e))}" : null;
    };

    /// <summary>Baseline of a verb plus extra arguments against the baseline.</summary>
    static Check Adds(string verb, params string[] extra) => Differs(e => Base(verb, e), e => [.. Base(verb, e), .. extra]);

    /// <summary>Baseline with the value of <paramref name="flag"/> (already in it) replaced.</summary>
    static Check Changes(string verb, string flag, Func<Env, string> value) => Differs(e => Base(verb, e), e =>
    {
        var args = Base(verb, e).ToList();
        int i = args.IndexOf(flag);
        if (i < 0) return [.. args, flag, value(e)];
        args[i + 1] = value(e);
        return [.. args];
    });

    /// <summary>A costly option: the plan the verb builds from parsed options differs between the two argument lists.</summary>
    static Check Plan<T>(Func<T, object> plan, Func<Env, string[]> a, Func<Env, string[]> b) where T : class => (e, _) =>
    {
        string pa = plan(Parse<T>(a(e))).ToString()!, pb = plan(Parse<T>(b(e))).ToString()!;
        return pa == pb ? $"the same plan for\n  {string.Join(' ', a(e))}\n  {string.Join(' ', b(e))}\n  {pa}" : null;
    };

    static T Parse<T>(string[] args) where T : class
    {
        using var parser = new Parser(s => { s.HelpWriter = null; s.CaseInsensitiveEnumValues = true; });
        T? got = null;
        parser.ParseArguments<T>(args).WithParsed(o => got = o).WithNotParsed(errs => throw new Xunit.Sdk.XunitException($"parse {string.Join(' ', args)}: {string.Join(", ", errs)}"));
        return got!;
    }

    static string[] Base(string verb, Env e) => verb switch
    {
        "eval" => ["eval", "--model", e.Model, "--dataset", e.Wiki, "--seqlen", "32", "--windows", "3"],
        "zeroshot" => ["zeroshot", "--model", e.Model, "--tasks", "boolq", "--limit", "3", "--json"],
        "prune" => ["prune", .. e.Common, "--metric", "pruner-zero", "--out", "{OUT}/pruned"],
        "score" => ["score", .. e.Common, "--dataset", e.Wiki, "--metrics", e.Lib, "--windows", "3", "--json"],
        "bench" => ["bench", .. e.Common, "--dataset", e.Wiki, "--metric", "magnitude", "--screen-windows", "1", "--repeat", "1"],
        "search" => ["search", .. e.Common, "--dataset", e.Wiki, "--run", "{OUT}/run", "--population", "3", "--iterations", "1", "--min-depth", "1", "--max-depth", "2",
                     "--screen-windows", "1", "--report-top", "1", "--top-k", "3"],
        "stats" => ["stats", .. e.Common.Where((_, i) => i is < 4 or > 5), "--top", "2", "--json"],
        "train" => ["train", "--out", "{OUT}/m", "--config", "micro", "--steps", "3", "--data", e.Calib, "--no-eval"],
        "finetune" => ["finetune", "--model", e.Model, "--out", "{OUT}/a", "--data", e.Calib, "--dataset", e.Wiki, "--seqlen", "16", "--batch", "2", "--steps", "2", "--lr", "0.01"],
        "synth" => ["synth", "--preset", "tiny", "--layers", "1", "--dtype", "f32", "--out", "{OUT}/s"],
        "worker" => ["worker", .. e.Common, "--dataset", e.Wiki, "--cluster", "localhost:43111"],
        "allocate" => ["allocate", .. e.Common, "--run", "{OUT}/run", "--sparsity", "0.7", "--generations", "2", "--offspring", "2", "--stages", "1x2,2x1"],
        _ => throw new ArgumentException(verb),
    };

    /// <summary>The options every pruning verb shares (model, calibration, target, data, cache, device).</summary>
    static IEnumerable<(string, Check)> Setup(string verb)
    {
        yield return ("model", Changes(verb, "--model", e => e.Model2));
        yield return ("calib", Changes(verb, "--calib", e => e.Calib2));
        yield return ("nsamples", Changes(verb, "--nsamples", _ => "3"));
        yield return ("seqlen", Changes(verb, "--seqlen", _ => "16"));
        yield return ("calib-sampling", Changes(verb, "--calib-sampling", _ => "random"));
        // With random sampling (stride draws nothing, and --calib-seed is refused with it).
        yield return ("calib-seed", Differs(e => Set(Base(verb, e), "--calib-sampling", "random"), e => [.. Set(Base(verb, e), "--calib-sampling", "random"), "--calib-seed", "5"]));
        if (verb == "stats") yield break;
        yield return ("sparsity", Adds(verb, "--sparsity", "0.7"));
        yield return ("nm", Adds(verb, "--nm", "2:4"));
        // The G cache goes where --cache says (a folder of the run's output here); a metric with G needs it.
        yield return ("cache", verb == "bench"
            ? Differs(e => Set(Base(verb, e), "--metric", "pruner-zero"), e => Set(Set(Base(verb, e), "--metric", "pruner-zero"), "--cache", "{OUT}/cache2"))
            : Changes(verb, "--cache", _ => "{OUT}/cache2"));
        if (verb != "prune") yield return ("dataset", Changes(verb, "--dataset", e => e.Wiki2));
        foreach (var (option, a, b) in AllocationCases)
            yield return (option, Differs(e => [.. Base(verb, e), .. a], e => [.. Base(verb, e), .. b]));
    }

    /// <summary>--allocation and OWL's parameters, each against the arguments without it (at 70%, where OWL is used).</summary>
    static readonly (string Option, string[] Without, string[] With)[] AllocationCases =
    [
        ("allocation", ["--sparsity", "0.7"], ["--sparsity", "0.7", "--allocation", "owl"]),
        ("owl-m", ["--sparsity", "0.7", "--allocation", "owl"], ["--sparsity", "0.7", "--allocation", "owl", "--owl-m", "3"]),
        ("owl-lambda", ["--sparsity", "0.7", "--allocation", "owl"], ["--sparsity", "0.7", "--allocation", "owl", "--owl-lambda", "0.05"]),
    ];

    /// <summary>How each (verb, option) is proven to matter.</summary>
    static readonly Dictionary<(string Verb, string Option), Check> Table = BuildTable();

    static Dictionary<(string, string), Check> BuildTable()
    {
        var t = new Dictionary<(string, string), Check>();
        void Add(string verb, string option, Check c) => t.Add((verb, option), c);

        Add("eval", "model", Changes("eval", "--model", e => e.Model2));
        Add("eval", "dataset", Changes("eval", "--dataset", e => e.Wiki2));
        Add("eval", "seqlen", Changes("eval", "--seqlen", _ => "16"));
        Add("eval", "windows", Changes("eval", "--windows", _ => "2"));
        Add("eval", "json", Adds("eval", "--json"));

        Add("zeroshot", "model", Changes("zeroshot", "--model", e => e.Model2));
        Add("zeroshot", "tasks", Changes("zeroshot", "--tasks", _ => "rte"));
        Add("zeroshot", "limit", Changes("zeroshot", "--limit", _ => "2"));
        Add("zeroshot", "data", Adds("zeroshot", "--data", "{ZS}"));
        Add("zeroshot", "bos", Adds("zeroshot", "--bos"));
        Add("zeroshot", "batch-tokens", Adds("zeroshot", "--batch-tokens", "64"));
        Add("zeroshot", "json", Differs(e => Base("zeroshot", e)[..^1], e => Base("zeroshot", e)));
        Add("zeroshot", "adapter", (e, r) => r.Fingerprint(Base("zeroshot", e)) == r.Fingerprint([.. Base("zeroshot", e), "--adapter", Adapter(e)]) ? "--adapter changed nothing" : null);
        Add("eval", "adapter", (e, r) => r.Fingerprint(Base("eval", e)) == r.Fingerprint([.. Base("eval", e), "--adapter", Adapter(e)]) ? "--adapter changed nothing" : null);

        foreach (var (o, c) in Setup("prune")) Add("prune", o, c);
        Add("prune", "metric", Changes("prune", "--metric", _ => "magnitude"));
        Add("prune", "out", Changes("prune", "--out", _ => "{OUT}/elsewhere"));
        Add("prune", "eval", Adds("prune", "--eval", "--dataset", "{WIKI}"));
        Add("prune", "json", Adds("prune", "--json"));
        Add("prune", "dataset", Differs(e => [.. Base("prune", e), "--eval", "--dataset", e.Wiki], e => [.. Base("prune", e), "--eval", "--dataset", e.Wiki2]));
        Add("prune", "windows", Differs(e => [.. Base("prune", e), "--eval", "--dataset", e.Wiki], e => [.. Base("prune", e), "--eval", "--dataset", e.Wiki, "--windows", "2"]));
        Add("prune", "update", Adds("prune", "--update", "obs"));
        Add("prune", "zeroshot", Adds("prune", "--zeroshot", "--zeroshot-tasks", "boolq", "--zeroshot-limit", "2"));
        Add("prune", "zeroshot-tasks", Differs(e => [.. Base("prune", e), "--zeroshot", "--zeroshot-tasks", "boolq", "--zeroshot-limit", "2"],
                                                e => [.. Base("prune", e), "--zeroshot", "--zeroshot-tasks", "rte", "--zeroshot-limit", "2"]));
        Add("prune", "zeroshot-limit", Differs(e => [.. Base("prune", e), "--zeroshot", "--zeroshot-tasks", "boolq", "--zeroshot-limit", "2"],
                                                e => [.. Base("prune", e), "--zeroshot", "--zeroshot-tasks", "boolq", "--zeroshot-limit", "3"]));
        Add("prune", "device", Plan<PruneOptions>(o => o.Session(), e => Base("prune", e), e => [.. Base("prune", e), "--device", "cuda"]));

        foreach (var (o, c) in Setup("score")) Add("score", o, c);
        Add("score", "metrics", Changes("score", "--metrics", e => e.Lib + ".2"));
        Add("score", "json", Differs(e => Base("score", e)[..^1], e => Base("score", e)));
        Add("score", "csv", Adds("score", "--csv", "{OUT}/table.csv"));
        Add("score", "windows", Changes("score", "--windows", _ => "2"));
        Add("score", "update", Adds("score", "--update", "obs"));
        Add("score", "zeroshot", Adds("score", "--zeroshot", "--zeroshot-tasks", "boolq", "--zeroshot-limit", "2"));
        Add("score", "zeroshot-tasks", Differs(e => [.. Base("score", e), "--zeroshot", "--zeroshot-tasks", "boolq", "--zeroshot-limit", "2"],
                                                e => [.. Base("score", e), "--zeroshot", "--zeroshot-tasks", "rte", "--zeroshot-limit", "2"]));
        Add("score", "zeroshot-limit", Differs(e => [.. Base("score", e), "--zeroshot", "--zeroshot-tasks", "boolq", "--zeroshot-limit", "1"],
                                                e => [.. Base("score", e), "--zeroshot", "--zeroshot-tasks", "boolq", "--zeroshot-limit", "4"]));
        Add("score", "screen-windows", Adds("score", "--screen-windows", "1"));
        Add("score", "top-k", Differs(e => [.. Base("score", e), "--screen-windows", "1"], e => [.. Base("score", e), "--screen-windows", "1", "--top-k", "2"]));
        Add("score", "device", Plan<ScoreOptions>(o => o.Session(), e => Base("score", e), e => [.. Base("score", e), "--device", "cuda"]));

        foreach (var (o, c) in Setup("bench")) Add("bench", o, c);
        Add("bench", "metric", Changes("bench", "--metric", _ => "wanda"));
        Add("bench", "screen-windows", Changes("bench", "--screen-windows", _ => "2"));
        Add("bench", "repeat", Changes("bench", "--repeat", _ => "2"));
        Add("bench", "device", Plan<BenchOptions>(o => o.Session(), e => Base("bench", e), e => [.. Base("bench", e), "--device", "cuda"]));

        foreach (var (o, c) in Setup("search")) Add("search", o, c);
        Add("search", "run", Changes("search", "--run", _ => "{OUT}/run2"));
        Add("search", "population", Changes("search", "--population", _ => "4"));
        Add("search", "iterations", Changes("search", "--iterations", _ => "2"));
        Add("search", "min-depth", Changes("search", "--min-depth", _ => "2"));
        Add("search", "max-depth", Changes("search", "--max-depth", _ => "3"));
        Add("search", "top-k", Changes("search", "--top-k", _ => "1"));
        Add("search", "mutation", Adds("search", "--mutation", "0.9"));
        Add("search", "seed", Adds("search", "--seed", "1"));
        Add("search", "screen-windows", Changes("search", "--screen-windows", _ => "2"));
        Add("search", "report-top", Changes("search", "--report-top", _ => "2"));
        Add("search", "batch", Adds("search", "--batch", "2"));
        Add("search", "stages", Differs(e => Set(Base("search", e), "--screen-windows", "4"), e => [.. Set(Base("search", e), "--screen-windows", "4"), "--stages", "2,4"]));
        Add("search", "transfer-model", Adds("search", "--transfer-model", "{MODEL2}"));
        // Resuming a stopped run continues it (the first half of --iterations 2, then the rest) where a new run
        // starts from scratch; both end with the same results, but only the resumed one evaluates nothing again.
        Add("search", "resume", (e, _) =>
        {
            string run = Path.Combine(TestCheckpoints.TempDir("resume"), "run");
            string[] args = [.. Base("search", e).Select(a => a.Replace("{OUT}/run", run))];
            var (x1, _, err1) = CliRunner.Run(args);
            if (x1 != 0) return err1;
            var (x2, out2, err2) = CliRunner.Run([.. args, "--resume"]);
            if (x2 != 0) return err2;
            var (x3, _, err3) = CliRunner.Run(args);
            return out2.Contains("(this process 0)") && x3 == 1 && err3.Contains("--resume") ? null : $"--resume made no difference: {out2}\n{err3}";
        });
        Add("search", "device", Plan<SearchOptionsCli>(o => o.Session(), e => Base("search", e), e => [.. Base("search", e), "--device", "cuda"]));
        Add("search", "cluster", Plan<SearchOptionsCli>(o => SearchCommand.ClusterPlan(o),
            e => [.. Without(Base("search", e), "--cache"), "--cluster", "localhost:43111"], e => [.. Without(Base("search", e), "--cache"), "--cluster", "localhost:43121"]));
        Add("search", "wait", Plan<SearchOptionsCli>(o => SearchCommand.ClusterPlan(o),
            e => [.. Without(Base("search", e), "--cache"), "--cluster", "localhost:43111"], e => [.. Without(Base("search", e), "--cache"), "--cluster", "localhost:43111", "--wait", "5"]));

        // The worker serves until stopped: every option is shown to reach the plan it serves with.
        static Check W(Func<Env, string[]> b) => Plan<WorkerOptions>(o => WorkerCommand.Plan(o), e => Base("worker", e), b);
        Add("worker", "model", W(e => Set(Base("worker", e), "--model", e.Model2)));
        Add("worker", "calib", W(e => Set(Base("worker", e), "--calib", e.Calib2)));
        Add("worker", "nsamples", W(e => Set(Base("worker", e), "--nsamples", "3")));
        Add("worker", "seqlen", W(e => Set(Base("worker", e), "--seqlen", "16")));
        Add("worker", "calib-sampling", W(e => Set(Base("worker", e), "--calib-sampling", "random")));
        Add("worker", "calib-seed", Plan<WorkerOptions>(o => WorkerCommand.Plan(o), e => Set(Base("worker", e), "--calib-sampling", "random"), e => [.. Set(Base("worker", e), "--calib-sampling", "random"), "--calib-seed", "5"]));
        Add("worker", "sparsity", W(e => Set(Base("worker", e), "--sparsity", "0.7")));
        Add("worker", "nm", W(e => Set(Base("worker", e), "--nm", "2:4")));
        Add("worker", "dataset", W(e => Set(Base("worker", e), "--dataset", e.Wiki2)));
        Add("worker", "cache", W(e => Set(Base("worker", e), "--cache", e.Cache + "2")));
        Add("worker", "device", W(e => Set(Base("worker", e), "--device", "cuda")));
        Add("worker", "cluster", W(e => Set(Base("worker", e), "--cluster", "localhost:43121")));
        Add("worker", "screen-windows", W(e => Set(Base("worker", e), "--screen-windows", "7")));
        Add("worker", "stages", Plan<WorkerOptions>(o => WorkerCommand.Plan(o), e => Set(Base("worker", e), "--screen-windows", "4"),
            e => [.. Set(Base("worker", e), "--screen-windows", "4"), "--stages", "2,4"]));
        Add("worker", "name", W(e => Set(Base("worker", e), "--name", "w1")));
        Add("worker", "advertise", W(e => Set(Base("worker", e), "--advertise", "10.0.0.7")));
        foreach (var (option, a, b) in AllocationCases)
            Add("worker", option, Plan<WorkerOptions>(o => WorkerCommand.Plan(o), e => [.. Base("worker", e), .. a], e => [.. Base("worker", e), .. b]));

        foreach (var (o, c) in Setup("stats")) Add("stats", o, c);   // model and calibration options, as for allocate below
        foreach (var (o, c) in Setup("allocate").Where(x => x.Item1 is "model" or "calib" or "nsamples" or "seqlen" or "calib-sampling" or "calib-seed"))
            Add("allocate", o, c);
        // The G cache is written where --cache says when the metric uses G.
        Add("allocate", "cache", Differs(e => Set(Base("allocate", e), "--metric", "pruner-zero"), e => Set(Set(Base("allocate", e), "--metric", "pruner-zero"), "--cache", "{OUT}/cache2")));
        Add("allocate", "run", Changes("allocate", "--run", _ => "{OUT}/run2"));
        Add("allocate", "metric", Adds("allocate", "--metric", "magnitude"));
        Add("allocate", "sparsity", Changes("allocate", "--sparsity", _ => "0.6"));
        Add("allocate", "generations", Changes("allocate", "--generations", _ => "3"));
        Add("allocate", "offspring", Changes("allocate", "--offspring", _ => "3"));
        Add("allocate", "step", Adds("allocate", "--step", "0.05"));
        Add("allocate", "stages", Changes("allocate", "--stages", _ => "2x2,4x1"));
        Add("allocate", "start", Adds("allocate", "--start", "uniform"));
        Add("allocate", "seed", Adds("allocate", "--seed", "1"));
        Add("allocate", "owl-m", Adds("allocate", "--owl-m", "3"));
        Add("allocate", "owl-lambda", Adds("allocate", "--owl-lambda", "0.05"));
        Add("allocate", "device", Plan<AllocateOptions>(o => AllocateCommand.Settings(o).Session, e => Base("allocate", e), e => [.. Base("allocate", e), "--device", "cuda"]));
        Add("allocate", "resume", (e, r) =>
        {
            // A finished 2-generation run resumed to 3 generations: only the third is new.
            string run = TestCheckpoints.TempDir("opt-alloc-resume");
            string[] args = [.. Base("allocate", e).Select(a => a.Replace("{OUT}/run", run))];
            r.Run(args);
            string more = r.Run([.. Set(args, "--generations", "3"), "--resume"]);
            return more.Contains("generations 3 (resumed 2)") ? null : "--resume did not continue the stored run:\n" + more;
        });
        Add("stats", "top", Changes("stats", "--top", _ => "3"));
        Add("stats", "json", Differs(e => Base("stats", e)[..^1], e => Base("stats", e)));
        Add("stats", "csv", Adds("stats", "--csv", "{OUT}/stats.csv"));

        Add("train", "out", Changes("train", "--out", _ => "{OUT}/m2"));
        Add("train", "config", Plan<TrainOptionsCli>(o => TrainCommand.Plan(o), e => Base("train", e), e => Set(Base("train", e), "--config", "tiny")));
        Add("train", "steps", Changes("train", "--steps", _ => "2"));
        Add("train", "minutes", Adds("train", "--minutes", "0.000001"));
        Add("train", "seed", Adds("train", "--seed", "9"));
        Add("train", "data", Changes("train", "--data", e => e.Calib2));
        Add("train", "lr", Adds("train", "--lr", "0.01"));
        Add("train", "bos-first", Adds("train", "--bos-first"));
        Add("train", "snapshot-every", Adds("train", "--snapshot-every", "2"));
        // Costly (the closing evaluation is the whole WikiText-2 test split; TrainCliTests runs it once): the plan.
        Add("train", "no-eval", Plan<TrainOptionsCli>(o => TrainCommand.WritesModelCard(o), e => Base("train", e), e => Base("train", e).Where(a => a != "--no-eval").ToArray()));
        Add("train", "resume", (e, _) =>
        {
            string dir = Path.Combine(TestCheckpoints.TempDir("train-resume"), "m");
            string[] args = ["train", "--out", dir, "--config", "micro", "--steps", "3", "--data", e.Calib, "--no-eval"];
            var (x1, _, err1) = CliRunner.Run([.. args, "--minutes", "0.000001"]);   // stops after its first step, with a checkpoint
            if (x1 != 0) return err1;
            var (x2, _, err2) = CliRunner.Run(args);
            var (x3, _, err3) = CliRunner.Run([.. args, "--resume"]);
            return x2 == 1 && x3 == 0 && err3.Contains("resumed at step") ? null : $"--resume made no difference: {err2}\n{err3}";
        });

        Add("finetune", "model", Changes("finetune", "--model", e => e.Model2));
        Add("finetune", "out", Changes("finetune", "--out", _ => "{OUT}/b"));
        Add("finetune", "rank", Adds("finetune", "--rank", "4"));
        Add("finetune", "alpha", Adds("finetune", "--alpha", "32"));
        Add("finetune", "dropout", Adds("finetune", "--dropout", "0.5"));
        Add("finetune", "targets", Adds("finetune", "--targets", "q,k,gate"));
        Add("finetune", "data", Changes("finetune", "--data", e => e.Calib2));
        Add("finetune", "dataset", Differs(e => [.. Base("finetune", e), "--eval-every", "2"], e => [.. Set(Base("finetune", e), "--dataset", e.Wiki2), "--eval-every", "2"]));
        Add("finetune", "seqlen", Changes("finetune", "--seqlen", _ => "8"));
        Add("finetune", "batch", Changes("finetune", "--batch", _ => "1"));
        Add("finetune", "grad-accum", Adds("finetune", "--grad-accum", "2"));
        Add("finetune", "lr", Changes("finetune", "--lr", _ => "0.001"));
        Add("finetune", "steps", Changes("finetune", "--steps", _ => "3"));
        Add("finetune", "tokens", Differs(e => [.. Without(Base("finetune", e), "--steps"), "--tokens", "32"], e => [.. Without(Base("finetune", e), "--steps"), "--tokens", "96"]));
        Add("finetune", "warmup", Adds("finetune", "--warmup", "1"));
        Add("finetune", "seed", Adds("finetune", "--seed", "9"));
        Add("finetune", "eval-every", Adds("finetune", "--eval-every", "1"));
        // Only the latest checkpoint is kept, so the files at the end are the same: the plan.
        Add("finetune", "checkpoint-every", Plan<FinetuneOptionsCli>(o => FinetuneCommand.Plan(o), e => Base("finetune", e), e => [.. Base("finetune", e), "--checkpoint-every", "1"]));
        Add("finetune", "merge", Adds("finetune", "--merge", "masked"));
        Add("finetune", "resume", (e, _) =>
        {
            string dir = Path.Combine(TestCheckpoints.TempDir("ft-resume"), "a");
            string[] args = [.. Set(Base("finetune", e), "--out", dir)];
            var (x1, _, err1) = CliRunner.Run(args);
            if (x1 != 0) return err1;
            var (x2, _, err2) = CliRunner.Run(args);
            var (x3, _, err3) = CliRunner.Run([.. args, "--resume"]);
            return x2 == 1 && x3 == 0 && err3.Contains("resumed at step 2/2") ? null : $"--resume made no difference: {err2}\n{err3}";
        });

        Add("synth", "preset", Plan<SynthOptions>(o => SynthCommand.Plan(o), e => Base("synth", e), e => [.. Base("synth", e).Select(a => a == "tiny" ? "llama-7b" : a)]));
        Add("synth", "layers", Changes("synth", "--layers", _ => "2"));
        Add("synth", "dtype", Changes("synth", "--dtype", _ => "bf16"));
        Add("synth", "seed", Adds("synth", "--seed", "3"));
        Add("synth", "out", Changes("synth", "--out", _ => "{OUT}/s2"));
        return t;
    }

    /// <summary>Every verb's options, from the parser's attributes: (verb name, option long name).</summary>
    static List<(string Verb, string Option, Type Type)> AllOptions() =>
        typeof(Program).Assembly.GetTypes()
            .Select(ty => (Type: ty, Verb: ty.GetCustomAttribute<VerbAttribute>()))
            .Where(v => v.Verb != null)
            .SelectMany(v => v.Type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
                .Select(p => p.GetCustomAttribute<OptionAttribute>())
                .Where(a => a != null)
                .Select(a => (v.Verb!.Name, a!.LongName, v.Type)))
            .OrderBy(x => x.Name).ThenBy(x => x.LongName).ToList();

    [Fact]
    public void EveryOptionOfEveryVerbHasAProof()
    {
        var all = AllOptions();
        Assert.True(all.Count > 80, $"only {all.Count} options found");
        var missing = all.Where(o => !Table.ContainsKey((o.Verb, o.Option))).Select(o => $"{o.Verb} --{o.Option}").ToList();
        Assert.True(missing.Count == 0, "options with no proof that they change the output or the run identity (add one to OptionsMatterTests.Table, or drop the option):\n" + string.Join("\n", missing));
        var stale = Table.Keys.Where(k => !all.Any(o => o.Verb == k.Verb && o.Option == k.Option)).ToList();
        Assert.True(stale.Count == 0, "table entries for options no verb has: " + string.Join(", ", stale));
    }

    public static TheoryData<string> Verbs() => [.. AllOptions().Select(o => o.Verb).Distinct()];

    /// <summary>Per verb: its baseline is deterministic, and every option's check finds a difference.</summary>
    [Theory]
    [MemberData(nameof(Verbs))]
    public void EveryOptionChangesWhatTheVerbDoes(string verb)
    {
        var env = Setup();
        var runs = new Runs(env);
        if (verb != "worker")
        {
            var b = Base(verb, env);
            Assert.Equal(runs.Run(b), runs.Fingerprint(b));   // two runs of the baseline agree: a difference below is the option's
        }
        var failures = new List<string>();
        foreach (var (_, option, _) in AllOptions().Where(o => o.Verb == verb))
        {
            if (!Table.TryGetValue((verb, option), out var check)) { failures.Add($"--{option}: no entry"); continue; }
            try { if (check(env, runs) is { } why) failures.Add($"--{option}: {why}"); }
            catch (Exception ex) { failures.Add($"--{option}: {ex.Message}"); }
        }
        Assert.True(failures.Count == 0, $"{verb}: options that changed nothing:\n" + string.Join("\n", failures));
    }

    /// <summary>An option a combination would ignore is refused in one line (exit 1) before any work.</summary>
    [Fact]
    public void OptionsACombinationWouldIgnoreAreRefusedInOneLine()
    {
        var e = Setup();
        CliRunner.UserError("--calib-seed applies to --calib-sampling random", [.. Base("stats", e), "--calib-seed", "3"]);
        CliRunner.UserError("--windows applies to --eval", [.. Base("prune", e).Select(a => a.Replace("{OUT}", TestCheckpoints.TempDir("r"))), "--windows", "2"]);
        CliRunner.UserError("--dataset applies to --eval", [.. Base("prune", e).Select(a => a.Replace("{OUT}", TestCheckpoints.TempDir("r"))), "--dataset", e.Wiki]);
        CliRunner.UserError("--zeroshot-limit applies to --zeroshot", [.. Base("prune", e).Select(a => a.Replace("{OUT}", TestCheckpoints.TempDir("r"))), "--zeroshot-limit", "2"]);
        CliRunner.UserError("--zeroshot-tasks applies to --zeroshot", [.. Base("score", e), "--zeroshot-tasks", "boolq"]);
        CliRunner.UserError("--top-k applies to --screen-windows", [.. Base("score", e), "--top-k", "3"]);
        string run = Path.Combine(TestCheckpoints.TempDir("r"), "run");
        string[] search = [.. Base("search", e).Select(a => a.Replace("{OUT}/run", run))];
        CliRunner.UserError("--wait applies to --cluster", [.. search, "--wait", "5"]);
        CliRunner.UserError("--cache is not used with --cluster", [.. search, "--cluster", "localhost:43111"]);
        CliRunner.UserError("--device is not used with --cluster", [.. Without(search, "--cache"), "--cluster", "localhost:43111", "--device", "cpu"]);
        // Stage lists the screen could not follow: refused before any work, naming the option.
        CliRunner.UserError("--stages needs at least two stages", [.. search, "--stages", "1"]);
        CliRunner.UserError("--stages 2,4: the last stage must be the screen's 1 windows", [.. search, "--stages", "2,4"]);
        CliRunner.UserError("stages must increase", [.. Set(search, "--screen-windows", "8"), "--stages", "4,2,8"]);
        CliRunner.UserError("every stage needs at least 2 windows", [.. Set(search, "--screen-windows", "8"), "--stages", "1,8"]);
        CliRunner.UserError("--stages 4,6: the last stage must be the screen's 8 windows", [.. Base("worker", e), "--screen-windows", "8", "--stages", "4,6"]);
        Assert.False(Directory.Exists(run));
        // The issue's case: options the search never honoured are no longer accepted at all (a parse error, exit 2).
        foreach (var extra in new[] { new[] { "--update", "obs" }, ["--zeroshot"], ["--windows", "3"] })
        {
            var (exit, _, err) = CliRunner.Run([.. search, .. extra]);
            Assert.True(exit == 2, $"search {string.Join(' ', extra)}: exit {exit}: {err}");
            Assert.Contains($"'{extra[0][2..]}'", err);
            var (wexit, _, _) = CliRunner.Run([.. Base("worker", e), .. extra]);
            Assert.Equal(2, wexit);
        }
        Assert.False(Directory.Exists(run));
    }

    /// <summary>The arguments with the value of <paramref name="flag"/> set (added when absent).</summary>
    /// <summary>A LoRA adapter (non-zero B) for the tiny test checkpoint, made once by `finetune`.</summary>
    static string Adapter(Env e)
    {
        if (_adapter.TryGetValue(e.Model, out var dir)) return dir;
        dir = Path.Combine(TestCheckpoints.TempDir("opt-adapter"), "a");
        var (exit, _, err) = CliRunner.Run([.. Base("finetune", e).Select(a => a == "{OUT}/a" ? dir : a), "--targets", "q,k,v,o,gate,up,down"]);
        if (exit != 0) throw new Xunit.Sdk.XunitException(err);
        return _adapter[e.Model] = dir;
    }
    static readonly Dictionary<string, string> _adapter = new();

    static string[] Set(string[] args, string flag, string value)
    {
        var l = args.ToList();
        int i = l.IndexOf(flag);
        if (i < 0) return [.. l, flag, value];
        l[i + 1] = value;
        return [.. l];
    }

    /// <summary>The arguments without <paramref name="flag"/> and its value.</summary>
    static string[] Without(string[] args, string flag)
    {
        var l = args.ToList();
        int i = l.IndexOf(flag);
        if (i >= 0) l.RemoveRange(i, 2);
        return [.. l];
    }
}
