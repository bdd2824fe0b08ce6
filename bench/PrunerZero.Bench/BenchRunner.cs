// Runs the selected suites with one short in-process BenchmarkDotNet job and writes the results table.
// In-process (no generated project per benchmark): one build, one process, the data of a shape generated
// once, and the TorchSharp loader fix of this repository stays in effect for the reference suite.
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Exporters.Csv;
using BenchmarkDotNet.Exporters.Json;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;

namespace PrunerZero.Bench;

/// <summary>A named group of benchmark classes. Prepare returns null when the suite can run, else why it is skipped.</summary>
/// IterationCount overrides the options' measured iterations for this suite (the seconds-long reference cases).
public sealed record Suite(string Name, Type[] Types, Func<BenchOptions, ResultsTable, string?>? Prepare = null, Action? Finish = null,
                           Func<BenchOptions, int>? IterationCount = null);

public static class BenchRunner
{
    public static Suite CpuSuite => new("cpu", [typeof(CpuKernelBench), typeof(FloorBench)]);

    public static Suite GpuSuite => new("gpu", [typeof(GpuBench)], (o, _) =>
    {
        if (o.GpuEmulate && o.Shapes.Any(s => s.Count > 1 << 18))
            return "--gpu-emulate runs ILGPU's CPU emulator (µs per thread); use shapes of at most 262144 weights, e.g. --shapes 256x512";
        var why = GpuDevice.TryOpen(o.GpuEmulate);
        return why is null ? null : $"GPU suite skipped: {why}";
    }, GpuDevice.Close);

    public static IConfig Config(BenchOptions o, int iterations)
    {
        var job = Job.Default
            .WithToolchain(InProcessEmitToolchain.Instance)
            .WithLaunchCount(1)
            .WithWarmupCount(o.WarmupCount)
            .WithIterationCount(iterations)
            .WithInvocationCount(1)
            .WithUnrollFactor(1)
            .WithId("short-inprocess");
        return ManualConfig.CreateEmpty()
            .AddJob(job)
            .AddLogger(ConsoleLogger.Default)
            .AddColumnProvider(DefaultColumnProviders.Instance)
            .AddExporter(CsvExporter.Default, MarkdownExporter.GitHub, JsonExporter.Brief)
            .WithArtifactsPath(o.ArtifactsPath)
            .WithSummaryStyle(SummaryStyle.Default.WithTimeUnit(TimeUnit.Millisecond))
            .WithOptions(ConfigOptions.JoinSummary | ConfigOptions.DisableLogFile);
    }

    /// <summary>
    /// Entry point of both programs. commandPrefix is how the program is started from the repository root
    /// (it heads the command line recorded in the results file); environment adds lines to the machine section.
    /// </summary>
    public static int Run(string[] args, string commandPrefix, IReadOnlyList<Suite> suites, IEnumerable<string> defaultSuites,
                          Func<IEnumerable<string>>? environment = null)
    {
        BenchOptions o;
        try { o = BenchOptions.Parse(args, defaultSuites); }
        catch (ArgumentException ex) { Console.Error.WriteLine($"error: {ex.Message}"); return 2; }
        if (o.Help) { Console.WriteLine(BenchOptions.Usage); return 0; }
        foreach (var name in o.Suites)
            if (!suites.Any(s => s.Name.Equals(name, StringComparison.OrdinalIgnoreCase)))
            {
                Console.Error.WriteLine($"error: unknown suite '{name}'; this program has {string.Join(", ", suites.Select(s => s.Name))}");
                return 2;
            }
        BenchOptions.Current = o;

        var env = MachineInfo.Lines().Concat(environment?.Invoke() ?? []).ToList();
        foreach (var line in env) Console.WriteLine(line);
        Console.WriteLine($"Shapes: {string.Join(", ", o.Shapes)}; metrics: {string.Join(", ", o.Metrics)}; suites: {string.Join(", ", o.Suites)}");
        foreach (var m in o.Metrics) Console.WriteLine($"  {m} = {BenchMetrics.Get(m)} (depth {BenchMetrics.Get(m).Depth})");

        var table = new ResultsTable();
        table.Notes.Add($"Load average (/proc/loadavg) before the run: {LoadAverage()}");

        int failures = 0;
        foreach (var suite in suites.Where(s => o.Suites.Contains(s.Name)))
        {
            var skip = suite.Prepare?.Invoke(o, table);
            if (skip is not null)
            {
                Console.WriteLine(skip);
                table.Notes.Add(skip);
                continue;
            }
            var config = Config(o, suite.IterationCount?.Invoke(o) ?? o.IterationCount);
            try
            {
                foreach (var type in suite.Types)
                {
                    var summary = BenchmarkRunner.Run(type, config);
                    if (summary.HasCriticalValidationErrors || summary.Reports.Any(r => !r.Success)) failures++;
                    table.Add(summary);
                }
            }
            finally { suite.Finish?.Invoke(); }
        }

        table.Notes.Add($"Load average after the run: {LoadAverage()} (about {Environment.ProcessorCount} while this run alone keeps every core busy; more means other work shared the machine)");
        string command = string.Join(' ', new[] { commandPrefix }.Concat(args.Select(Quote)));
        var markdown = table.Render(o, command, env);
        Console.WriteLine();
        Console.WriteLine(markdown);
        if (o.ResultsPath is not null)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(o.ResultsPath))!);
            File.WriteAllText(o.ResultsPath, markdown);
            Console.WriteLine($"wrote {o.ResultsPath}");
        }
        if (failures > 0) Console.Error.WriteLine($"{failures} benchmark run(s) reported errors; see the log above");
        return failures > 0 ? 1 : 0;
    }

    public static string LoadAverage()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) + " (1, 5, 15 min)"; }
        catch (IOException) { return "unknown"; }
    }

    static string Quote(string a) => a.Length > 0 && a.All(ch => char.IsLetterOrDigit(ch) || "-_./,:=+".Contains(ch)) ? a : $"'{a.Replace("'", "'\\''")}'";
}
