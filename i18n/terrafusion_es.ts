<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1">
<context>
    <name>TerraFusion</name>
    <message>
        <location filename="../terrafusion_plugin/plugin.py" line="46"/>
        <source>TerraFusion Panel</source>
        <translation>Panel de TerraFusion</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/plugin.py" line="49"/>
        <source>Show or hide the TerraFusion panel</source>
        <translation>Mostrar u ocultar el panel de TerraFusion</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/plugin.py" line="53"/>
        <source>TerraFusion Toolbar</source>
        <translation>Barra de herramientas de TerraFusion</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks.py" line="33"/>
        <source>Checking the TerraFusion agent</source>
        <translation>Comprobando el agente de TerraFusion</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks.py" line="49"/>
        <source>The agent status could not be checked: {reason}.</source>
        <translation>No se pudo comprobar el estado del agente: {reason}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks.py" line="65"/>
        <source>Reading the TerraFusion local copy</source>
        <translation>Leyendo la copia local de TerraFusion</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks.py" line="91"/>
        <source>The local copy could not be read: {reason}.</source>
        <translation>No se pudo leer la copia local: {reason}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks.py" line="97"/>
        <source>the task was cancelled</source>
        <translation>la tarea se canceló</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="107"/>
        <source>Not scheduled</source>
        <translation>No programada</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="115"/>
        <source>{path} (not created yet)</source>
        <translation>{path} (aún no creada)</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="123"/>
        <source>Not running</source>
        <translation>No está en ejecución</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="125"/>
        <source>Unknown</source>
        <translation>Desconocido</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="132"/>
        <source>Running (agent {version})</source>
        <translation>En ejecución (agente {version})</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="130"/>
        <source>Running with warnings (agent {version})</source>
        <translation>En ejecución con advertencias (agente {version})</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="131"/>
        <source>Running with failing checks (agent {version})</source>
        <translation>En ejecución con comprobaciones fallidas (agente {version})</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="137"/>
        <source>Never</source>
        <translation>Nunca</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="139"/>
        <source>succeeded</source>
        <translation>correcta</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="139"/>
        <source>failed</source>
        <translation>fallida</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="140"/>
        <source>running</source>
        <translation>en curso</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="141"/>
        <source>{when}, {result}, rows pulled: {pulled}</source>
        <translation>{when}, {result}, filas recibidas: {pulled}</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="151"/>
        <source>No agent answers at {address}; start it with “terrafusion-agent run”.</source>
        <translation>Ningún agente responde en {address}; inícielo con «terrafusion-agent run».</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="154"/>
        <source>The agent answers, but its sync schedule has stopped.</source>
        <translation>El agente responde, pero su programación de sincronización se ha detenido.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="156"/>
        <source>The agent answers, but did not report its state in time.</source>
        <translation>El agente responde, pero no informó de su estado a tiempo.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="173"/>
        <source>Reading the local copy…</source>
        <translation>Leyendo la copia local…</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="190"/>
        <source>QGIS could not open these tables of the local copy: {tables}.</source>
        <translation>QGIS no pudo abrir estas tablas de la copia local: {tables}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="194"/>
        <source>Layers added to the group “{group}”: {layers}.</source>
        <translation>Capas añadidas al grupo «{group}»: {layers}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="197"/>
        <source>The synced layers are already in the project.</source>
        <translation>Las capas sincronizadas ya están en el proyecto.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="199"/>
        <source>The local copy has no synced tables yet.</source>
        <translation>La copia local aún no tiene tablas sincronizadas.</translation>
    </message>
</context>
<context>
    <name>TerraFusionDock</name>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="21"/>
        <source>Sync agent</source>
        <translation>Agente de sincronización</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="27"/>
        <source>State:</source>
        <translation>Estado:</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="34"/>
        <source>Checking…</source>
        <translation>Comprobando…</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="44"/>
        <source>Last sync:</source>
        <translation>Última sincronización:</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="61"/>
        <source>Next sync:</source>
        <translation>Próxima sincronización:</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="78"/>
        <source>Local copy:</source>
        <translation>Copia local:</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="116"/>
        <source>Ask the sync agent for its state now</source>
        <translation>Preguntar ahora al agente de sincronización por su estado</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="119"/>
        <source>Refresh</source>
        <translation>Actualizar</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="126"/>
        <source>Add the tables of the local copy to the project, in the group “TerraFusion”</source>
        <translation>Añadir las tablas de la copia local al proyecto, en el grupo «TerraFusion»</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="129"/>
        <source>Add synced layers</source>
        <translation>Añadir capas sincronizadas</translation>
    </message>
</context>
</TS>
