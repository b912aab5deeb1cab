/* hubspot-relay's HubSpot plugin for analytics.js (analytics-next), loaded as a remote plugin:
 * the relay's settings list it, analytics-next loads this file and calls
 * window.hubspotRelayPlugin(settings). It loads HubSpot's hubspot.js and maps Segment calls to _hsq:
 *   page     -> setPath(path), trackPageView (not for the first page: hubspot.js counts it on load)
 *   identify -> identify(traits, normalized) when there is an email; HubSpot sends it with the
 *               next page view or event, or at once with flushIdentifyImmediately
 *   track    -> trackCustomBehavioralEvent pe{hubId}_{name} (or trackEvent in legacy mode)
 */
(function () {
  'use strict'

  var warned = false

  function snakeKey(key) {
    return String(key).trim().toLowerCase().replace(/\s+/g, '_')
  }

  function eventKey(key) {
    var name = String(key).trim().toLowerCase().replace(/[^a-z0-9_]+/g, '_').replace(/^_+|_+$/g, '')
    if (!/^[a-z]/.test(name)) name = 'p_' + name
    return name.slice(0, 50)
  }

  function eventName(event) {
    return String(event).trim().toLowerCase().replace(/[^a-z0-9_]+/g, '_').replace(/^_+|_+$/g, '') || 'event'
  }

  var RENAMED = { firstName: 'firstname', first_name: 'firstname', lastName: 'lastname', last_name: 'lastname',
    position: 'jobtitle', jobTitle: 'jobtitle', job_title: 'jobtitle', createdAt: 'createdate',
    created_at: 'createdate', created: 'createdate' }
  var ADDRESS = { street: 'address', address: 'address', city: 'city', state: 'state', region: 'state',
    postalCode: 'zip', postal_code: 'zip', zip: 'zip', country: 'country' }
  var ISO_DATE = /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/

  function value(v) {
    if (v instanceof Date) return v.getTime()
    if (typeof v === 'string' && ISO_DATE.test(v) && !isNaN(Date.parse(v))) return Date.parse(v)
    if (Array.isArray(v)) return v.join(';')
    if (v !== null && typeof v === 'object') return JSON.stringify(v)
    return v
  }

  // The seed's rules: lowercased keys, whitespace to _, firstName/lastName to firstname/lastname.
  function contactTraits(traits) {
    var out = {}
    Object.keys(traits || {}).forEach(function (key) {
      var v = traits[key]
      if (v === null || v === undefined) return
      if (key === 'address' && typeof v === 'object') {
        Object.keys(v).forEach(function (part) {
          if (ADDRESS[part] && v[part] != null) out[ADDRESS[part]] = value(v[part])
        })
        return
      }
      if (key === 'company' && typeof v === 'object') {
        if (v.name != null) out.company = v.name
        return
      }
      out[RENAMED[key] || snakeKey(key)] = value(v)
    })
    return out
  }

  function eventProperties(props) {
    var flat = {}
    ;(function walk(prefix, v) {
      if (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date)) {
        Object.keys(v).forEach(function (k) { walk(prefix ? prefix + '_' + k : k, v[k]) })
      } else if (prefix) {
        flat[prefix] = v
      }
    })('', props || {})
    var out = {}
    var count = 0
    Object.keys(flat).sort().forEach(function (key) {
      var v = flat[key]
      if (v === null || v === undefined || key === 'email' || count >= 50) return
      var name = eventKey(key)
      if (name in out) return
      out[name] = typeof v === 'string' ? v.slice(0, 256) : Array.isArray(v) ? JSON.stringify(v) : v
      count++
    })
    return out
  }

  function isEmail(v) {
    return typeof v === 'string' && /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(v.trim())
  }

  function hubspotPlugin(settings) {
    settings = settings || {}
    var hubId = String(settings.hubId || '')
    var legacy = settings.apiMode === 'legacy'
    var loaded = false
    var pagesSeen = 0
    // End-user consent (Segment's rules, as the relay applies them): with categories, hubspot.js is
    // not loaded, and _hsq not touched, until an event's consent grants every one of them.
    var categories = settings.consentCategories || []
    var started = false
    var deferred = categories.length > 0

    function hsq() {
      window._hsq = window._hsq || []
      return window._hsq
    }

    function scriptUrl() {
      if (settings.scriptUrl) return settings.scriptUrl.replace('{hubId}', hubId)
      var host = settings.euDataCenter ? 'js-eu1.hs-scripts.com' : 'js.hs-scripts.com'
      return 'https://' + host + '/' + hubId + '.js'
    }

    function existingSnippet() {
      var tag = document.getElementById('hs-script-loader')
      var live = window._hsq && !Array.isArray(window._hsq)
      return !!(tag || live)
    }

    function loadScript(src, id) {
      return new Promise(function (resolve, reject) {
        var s = document.createElement('script')
        s.async = true
        s.src = src
        if (id) s.id = id
        s.onload = function () { resolve() }
        s.onerror = function () { reject(new Error('could not load ' + src)) }
        document.head.appendChild(s)
      })
    }

    function consentAllows(ctx) {
      if (!categories.length) return true
      var consent = ((ctx.event || {}).context || {}).consent
      if (!consent || typeof consent !== 'object' || !('categoryPreferences' in consent)) return true
      var prefs = consent.categoryPreferences
      if (!prefs || typeof prefs !== 'object' || Array.isArray(prefs)) return false
      return categories.every(function (c) { return prefs[c] === true })
    }

    function start() {
      if (started) return Promise.resolve()
      started = true
      hsq()
      if (existingSnippet()) {
        if (!warned) {
          warned = true
          console.warn('[hubspot-relay] HubSpot\'s own snippet is on this page: remove it, the HubSpot ' +
            'integration loads hubspot.js itself. Using the one already loaded.')
        }
        return Promise.resolve()
      }
      var loads = [loadScript(scriptUrl(), 'hs-script-loader')]
      if (settings.loadFormsSdk) loads.push(loadScript('https://js.hsforms.net/forms/v2.js'))
      return Promise.all(loads)
    }

    // Whether this call may go to HubSpot: consent granted (hubspot.js then loads, if not yet).
    function admit(ctx) {
      if (!consentAllows(ctx)) return false
      if (!started) start().catch(function (e) { console.warn('[hubspot-relay] ' + e.message) })
      return true
    }

    function identifyPayload(ctx) {
      var traits = ctx.event.traits || {}
      var email = isEmail(traits.email) ? traits.email.trim() : isEmail(ctx.event.userId) ? ctx.event.userId.trim() : null
      if (!email) return null
      var out = contactTraits(traits)
      out.email = email
      return out
    }

    return {
      name: 'HubSpot',
      type: 'destination',
      version: '1.0.0',
      isLoaded: function () { return loaded },
      load: function () {
        if (deferred) { // hubspot.js waits for the first event the user's consent allows
          loaded = true
          return Promise.resolve()
        }
        return start().then(function () { loaded = true })
      },
      page: function (ctx) {
        var first = !started
        if (!admit(ctx)) return ctx
        pagesSeen++
        // hubspot.js records the page it loads on: the first page, or the one consent arrived on
        if (deferred ? first : pagesSeen === 1) return ctx
        var props = ctx.event.properties || {}
        var path = props.path || window.location.pathname
        if (props.search) path += props.search
        hsq().push(['setPath', path])
        hsq().push(['trackPageView'])
        return ctx
      },
      identify: function (ctx) {
        if (!admit(ctx)) return ctx
        var traits = identifyPayload(ctx)
        if (!traits) return ctx // HubSpot needs an email (the seed)
        hsq().push(['identify', traits])
        if (settings.flushIdentifyImmediately) hsq().push(['trackEvent', { id: 'identify' }])
        return ctx
      },
      track: function (ctx) {
        if (!admit(ctx)) return ctx
        var props = ctx.event.properties || {}
        if (isEmail(props.email)) hsq().push(['identify', { email: props.email.trim() }])
        if (legacy) {
          var ev = { id: ctx.event.event }
          if (typeof props.revenue === 'number') ev.value = props.revenue
          hsq().push(['trackEvent', ev])
        } else {
          var mapped = (settings.eventNames || {})[ctx.event.event]
          var name = mapped || 'pe' + hubId + '_' + eventName(ctx.event.event)
          hsq().push(['trackCustomBehavioralEvent', { name: name, properties: eventProperties(props) }])
        }
        return ctx
      }
    }
  }

  window.hubspotRelayPlugin = function (settings) {
    return hubspotPlugin(settings)
  }
  window.hubspotRelayPlugin.internals = { contactTraits: contactTraits, eventProperties: eventProperties,
    eventName: eventName }
})()
