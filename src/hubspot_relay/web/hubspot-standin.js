/* A local stand-in for HubSpot's hubspot.js, for the sandbox and the demo (no real portal is
 * behind them): it takes over window._hsq like hubspot.js does, records every command in
 * window.__hsqLog (the queued ones first), and records the automatic page view of a load. */
(function () {
  'use strict'
  var log = (window.__hsqLog = window.__hsqLog || [])
  var queued = Array.isArray(window._hsq) ? window._hsq.slice() : []
  function record(cmd) {
    log.push(JSON.parse(JSON.stringify(cmd)))
    if (typeof window.__hsqOnPush === 'function') window.__hsqOnPush(cmd)
  }
  window._hsq = { push: function () { for (var i = 0; i < arguments.length; i++) record(arguments[i]) } }
  queued.forEach(record)
  log.push(['(automatic page view)', window.location.pathname])
})()
