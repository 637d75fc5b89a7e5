/* Draws the instance's BPMN diagram with bpmn-js and marks done, active and overdue elements. */
(function () {
  "use strict";
  var box = document.getElementById("diagram");
  if (!box) { return; }
  function fail(text) {
    box.innerHTML = "";
    var p = document.createElement("p");
    p.className = "diagram-error"; p.textContent = text;
    box.appendChild(p);
    box.setAttribute("data-state", "error");
  }
  if (typeof window.BpmnJS !== "function") {
    fail("Схема недоступна: не установлен bpmn-js (выполните make install).");
    return;
  }
  var read = function (name) {
    try { return JSON.parse(box.getAttribute(name) || "[]"); } catch (e) { return []; }
  };
  var completed = read("data-completed"), active = read("data-active"), overdue = read("data-overdue");
  fetch(box.getAttribute("data-xml"), { credentials: "same-origin" })
    .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.text(); })
    .then(function (xml) {
      box.innerHTML = "";
      var viewer = new window.BpmnJS({ container: box });
      return viewer.importXML(xml).then(function () {
        var canvas = viewer.get("canvas"), registry = viewer.get("elementRegistry");
        var mark = function (ids, css) {
          ids.forEach(function (id) { if (registry.get(id)) { canvas.addMarker(id, css); } });
        };
        mark(completed, "agglo-done");
        mark(active, "agglo-active");
        mark(overdue, "agglo-overdue");
        canvas.zoom("fit-viewport", "auto");
        box.setAttribute("data-state", "ready");
      });
    })
    .catch(function (error) { fail("Схему не удалось показать: " + error.message); });
})();
