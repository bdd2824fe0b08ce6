// The one base type of a user's mistake (model files, data, options), in Kernels so that every project can derive
// from it. Program.Main catches it once: one "error:" line, exit 1. Anything else escaping is a bug.
//
// The engine knows no command line, so its messages name parameters, marked with P("nsamples"); Message shows the
// bare name, and the CLI renders each as its flag (Render(name => "--" + ...)).
using System.Text.RegularExpressions;

namespace PrunerZero;

public abstract partial class UserError(string message, Exception? inner = null) : Exception(message, inner)
{
    const char Open = '\u0002', Close = '\u0003';

    /// <summary>A parameter's name inside a message (snake_case, as in the settings records).</summary>
    public static string P(string parameter) => $"{Open}{parameter}{Close}";

    /// <summary>The message with its parameter marks kept: for a message that quotes this one and is rendered later.</summary>
    public string Template => base.Message;

    /// <summary>The message with each parameter as <paramref name="name"/> renders it.</summary>
    public string Render(Func<string, string> name) => Marks().Replace(base.Message, m => name(m.Groups[1].Value));

    /// <summary>The message with bare parameter names.</summary>
    public override string Message => Render(p => p);

    [GeneratedRegex("\u0002([^\u0003]*)\u0003")]
    private static partial Regex Marks();
}
