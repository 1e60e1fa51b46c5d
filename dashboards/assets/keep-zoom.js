/* classifier-monitor: keep a user's zoom, pan and legend choices across the live refresh.

Every figure carries a constant `layout.uirevision`, which tells plotly to keep what the user
changed when a new figure arrives. Plotly remembers those changes in `_fullLayout._preGUI`,
but Dash's Graph draws the figure it already shows once more after each zoom (the figure
object plotly has edited in place, so it already holds the zoom), and that redraw makes plotly
forget the axis ranges the user set: the next refreshed figure then snaps back. This wraps
`Plotly.react` so that what a redraw already shows stays remembered. Plotly is loaded
later than this file, so the wrapper is installed when `window.Plotly` is first set. */
(function () {
    "use strict";

    // "xaxis.range[0]" -> the value at that path (undefined when absent)
    function valueAt(container, path) {
        let value = container;
        for (const part of path.replace(/\[(\d+)\]/g, ".$1").split(".")) {
            if (value === null || value === undefined) {
                return undefined;
            }
            value = value[part];
        }
        return value;
    }

    // The remembered edits that the figure about to be drawn already shows (a redraw of the
    // user's own state): plotly would forget them, they are put back after the redraw.
    function redrawnEdits(element, layout) {
        if (!element || !element._fullLayout || !element._fullLayout._preGUI || !layout) {
            return null;
        }
        const kept = {};
        let any = false;
        for (const [key, before] of Object.entries(element._fullLayout._preGUI)) {
            const incoming = valueAt(layout, key);
            if (incoming !== undefined && JSON.stringify(incoming) === JSON.stringify(valueAt(element._fullLayout, key))) {
                kept[key] = before;
                any = true;
            }
        }
        return any ? kept : null;
    }

    function keepUserEdits(plotly) {
        if (!plotly || !plotly.react || plotly.react.__keepsZoom) {
            return plotly;
        }
        const react = plotly.react;
        const wrapped = function (gd, figure) {
            const element = typeof gd === "string" ? document.getElementById(gd) : gd;
            const remembered = redrawnEdits(element, figure && figure.layout);
            const result = react.apply(this, arguments);
            if (!remembered) {
                return result;
            }
            return Promise.resolve(result).then(function (value) {
                if (element._fullLayout && element._fullLayout._preGUI) {
                    for (const key of Object.keys(remembered)) {
                        if (!(key in element._fullLayout._preGUI)) {
                            element._fullLayout._preGUI[key] = remembered[key];
                        }
                    }
                }
                return value;
            });
        };
        wrapped.__keepsZoom = true;
        plotly.react = wrapped;
        return plotly;
    }

    if (window.Plotly) {
        keepUserEdits(window.Plotly);
        return;
    }
    let current;
    Object.defineProperty(window, "Plotly", {
        configurable: true,
        get: function () { return current; },
        set: function (value) { current = keepUserEdits(value); },
    });
}());
