// The tutorials' chat room, without jQuery: one WebSocket, JSON messages, text only in the DOM.
(function () {
  "use strict";
  var script = document.currentScript;
  var log = document.getElementById("contents");
  var status = document.getElementById("chat-status");
  var form = document.getElementById("chat-form");
  var input = document.getElementById("msg");
  var scheme = location.protocol === "https:" ? "wss://" : "ws://";
  var ws = new WebSocket(scheme + location.host + script.dataset.socket);

  function show(text, cls) {
    var p = document.createElement("p");
    p.textContent = text;            // never innerHTML: a message cannot inject markup
    if (cls) { p.className = cls; }
    log.appendChild(p);
    log.scrollTop = log.scrollHeight;
  }

  ws.onopen = function () { status.textContent = "Connected."; };
  ws.onclose = function () { status.textContent = "Disconnected."; };
  ws.onmessage = function (event) {
    var msg = JSON.parse(event.data);
    if (msg.type === "message") {
      show(msg.name + ": " + msg.text, "message");
    } else {
      show(msg.name + (msg.type === "join" ? " joined the room" : " left the room"), "notice");
    }
  };
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (input.value && ws.readyState === WebSocket.OPEN) {
      ws.send(input.value);
      input.value = "";
    }
  });
}());
