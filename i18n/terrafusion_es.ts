<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1">
<context>
    <name>TerraFusion</name>
    <message>
        <location filename="../terrafusion_plugin/__init__.py" line="103"/>
        <source>TerraFusion needs {requirement}, but QGIS&apos;s Python loads {name} {version} from {folder}, which comes first on its path; update or remove that copy.</source>
        <translation>TerraFusion necesita {requirement}, pero el Python de QGIS carga {name} {version} desde {folder}, que va primero en su ruta; actualice o elimine esa copia.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/plugin.py" line="74"/>
        <source>TerraFusion Panel</source>
        <translation>Panel de TerraFusion</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/plugin.py" line="74"/>
        <source>Show or hide the TerraFusion panel</source>
        <translation>Mostrar u ocultar el panel de TerraFusion</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/plugin.py" line="92"/>
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
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="175"/>
        <source>Not scheduled</source>
        <translation>No programada</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="194"/>
        <source>{path} (not created yet)</source>
        <translation>{path} (aún no creada)</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="247"/>
        <source>Not running</source>
        <translation>No está en ejecución</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="249"/>
        <source>Unknown</source>
        <translation>Desconocido</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="262"/>
        <source>Running (agent {version})</source>
        <translation>En ejecución (agente {version})</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="260"/>
        <source>Running with warnings (agent {version})</source>
        <translation>En ejecución con advertencias (agente {version})</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="261"/>
        <source>Running with failing checks (agent {version})</source>
        <translation>En ejecución con comprobaciones fallidas (agente {version})</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="267"/>
        <source>Never</source>
        <translation>Nunca</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="72"/>
        <source>succeeded</source>
        <translation>correcta</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="72"/>
        <source>failed</source>
        <translation>fallida</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="72"/>
        <source>running</source>
        <translation>en curso</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="287"/>
        <source>The agent answers, but its sync schedule has stopped.</source>
        <translation>El agente responde, pero su programación de sincronización se ha detenido.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="289"/>
        <source>The agent answers, but did not report its state in time.</source>
        <translation>El agente responde, pero no informó de su estado a tiempo.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="434"/>
        <source>Reading the local copy…</source>
        <translation>Leyendo la copia local…</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="451"/>
        <source>QGIS could not open these tables of the local copy: {tables}.</source>
        <translation>QGIS no pudo abrir estas tablas de la copia local: {tables}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="455"/>
        <source>Layers added to the group “{group}”: {layers}.</source>
        <translation>Capas añadidas al grupo «{group}»: {layers}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="458"/>
        <source>The synced layers are already in the project.</source>
        <translation>Las capas sincronizadas ya están en el proyecto.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="460"/>
        <source>The local copy has no synced tables yet.</source>
        <translation>La copia local aún no tiene tablas sincronizadas.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflict_tasks.py" line="29"/>
        <source>Reading the TerraFusion conflicts</source>
        <translation>Leyendo los conflictos de TerraFusion</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflict_tasks.py" line="56"/>
        <source>The conflicts could not be read: {reason}.</source>
        <translation>No se pudieron leer los conflictos: {reason}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflict_tasks.py" line="69"/>
        <source>Resolving TerraFusion conflicts</source>
        <translation>Resolviendo conflictos de TerraFusion</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflict_tasks.py" line="97"/>
        <source>The conflicts could not be resolved: {reason}.</source>
        <translation>No se pudieron resolver los conflictos: {reason}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py" line="60"/>
        <source>NULL</source>
        <translation>NULL</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py" line="64"/>
        <source>(no geometry)</source>
        <translation>(sin geometría)</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py" line="144"/>
        <source>Local (yours)</source>
        <translation>Local (la suya)</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py" line="144"/>
        <source>Central</source>
        <translation>Central</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py" line="167"/>
        <source>Reading the conflicts…</source>
        <translation>Leyendo los conflictos…</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py" line="200"/>
        <source>No open conflicts: every change has reached both sides.</source>
        <translation>No hay conflictos abiertos: todos los cambios han llegado a ambos lados.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py" line="200"/>
        <source>{n} open conflict(s). Each row was changed here and centrally since the last sync; choose which version stays.</source>
        <translation>{n} conflicto(s) abierto(s). Cada fila se cambió aquí y en la central desde la última sincronización; elija qué versión se queda.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py" line="394"/>
        <source>Conflicts</source>
        <translation>Conflictos</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py" line="235"/>
        <source>deleted here, changed centrally</source>
        <translation>eliminada aquí, cambiada en la central</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py" line="237"/>
        <source>changed here, deleted centrally</source>
        <translation>cambiada aquí, eliminada en la central</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py" line="284"/>
        <source>(deleted)</source>
        <translation>(eliminado)</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py" line="289"/>
        <source>{geometry} (edited)</source>
        <translation>{geometry} (editada)</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py" line="377"/>
        <source>{n} conflict(s) resolved keeping your version; it reaches the central database at the next sync.</source>
        <translation>{n} conflicto(s) resuelto(s) manteniendo su versión; llegará a la base de datos central en la próxima sincronización.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py" line="377"/>
        <source>{n} conflict(s) resolved keeping the central version; the local copy has it now.</source>
        <translation>{n} conflicto(s) resuelto(s) manteniendo la versión central; la copia local ya la tiene.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/sync_algorithm.py" line="43"/>
        <source>Sync now</source>
        <translation>Sincronizar ahora</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py" line="402"/>
        <source>Keep local ({n})</source>
        <translation>Mantener la local ({n})</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py" line="402"/>
        <source>Keep local</source>
        <translation>Mantener la local</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py"/>
        <source>{n} edited row(s) were refused by the central database: fix the row and sync, try again, or drop your edit.</source>
        <translation>{n} fila(s) editada(s) rechazada(s) por la base de datos central: corrija la fila y sincronice, vuelva a intentarlo o descarte su edición.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py"/>
        <source>Refused by central: {message}</source>
        <translation>Rechazada por la central: {message}</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py"/>
        <source>Refused by the central database: {message}</source>
        <translation>Rechazada por la base de datos central: {message}</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py"/>
        <source>Try again ({n})</source>
        <translation>Reintentar ({n})</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py"/>
        <source>Try again</source>
        <translation>Reintentar</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py"/>
        <source>Send your edit again at the next sync, once the central database can accept it</source>
        <translation>Enviar su edición de nuevo en la próxima sincronización, cuando la base de datos central pueda aceptarla</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py"/>
        <source>Drop my edit ({n})</source>
        <translation>Descartar mi edición ({n})</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py"/>
        <source>Drop my edit</source>
        <translation>Descartar mi edición</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py"/>
        <source>Drop your edit and take the central version of the row back into the local copy</source>
        <translation>Descartar su edición y recuperar la versión central de la fila en la copia local</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py"/>
        <source>Keep your version of the selected rows; it is sent to the central database at the next sync</source>
        <translation>Mantener su versión de las filas seleccionadas; se envía a la base de datos central en la próxima sincronización</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py"/>
        <source>Take the central version of the selected rows into the local copy now</source>
        <translation>Llevar ahora la versión central de las filas seleccionadas a la copia local</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py" line="404"/>
        <source>Keep central ({n})</source>
        <translation>Mantener la central ({n})</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py" line="404"/>
        <source>Keep central</source>
        <translation>Mantener la central</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/conflicts_dialog.py"/>
        <source>Local</source>
        <translation>Local</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/conflicts_dialog.py"/>
        <source>Value</source>
        <translation>Valor</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/conflicts_dialog.py"/>
        <source>Take this column from your version or from the central version, or type its value</source>
        <translation>Tomar esta columna de su versión o de la versión central, o escribir su valor</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/conflicts_dialog.py"/>
        <source>empty: NULL</source>
        <translation>vacío: NULL</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/conflicts_dialog.py"/>
        <source>Conflict resolved with your choice for each column; the local copy has it now, the central database at the next sync.</source>
        <translation>Conflicto resuelto con su elección para cada columna; la copia local ya la tiene, la base de datos central la tendrá en la próxima sincronización.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="544"/>
        <source>Export</source>
        <translation>Exportar</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="88"/>
        <source>Cancel export</source>
        <translation>Cancelar la exportación</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="119"/>
        <source>Export to</source>
        <translation>Exportar a</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="120"/>
        <source>Export only the features where</source>
        <translation>Exportar solo los objetos donde</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="180"/>
        <source>No preset</source>
        <translation>Sin preajuste</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="198"/>
        <source>Synced tables</source>
        <translation>Tablas sincronizadas</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="318"/>
        <source>Selected features only ({n})</source>
        <translation>Solo los objetos seleccionados ({n})</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="318"/>
        <source>Selected features only</source>
        <translation>Solo los objetos seleccionados</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="322"/>
        <source>The preset keeps only rows where: {where}</source>
        <translation>El preajuste conserva solo las filas donde: {where}</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="342"/>
        <source>{format} files are always in WGS 84 (EPSG:{epsg}).</source>
        <translation>Los archivos {format} están siempre en WGS 84 (EPSG:{epsg}).</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="350"/>
        <source>Folder:</source>
        <translation>Carpeta:</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="353"/>
        <source>File:</source>
        <translation>Archivo:</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="404"/>
        <source>Choose the file to write.</source>
        <translation>Elija el archivo que se va a escribir.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="407"/>
        <source>Choose at least one field.</source>
        <translation>Elija al menos un campo.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="421"/>
        <source>{file} exists already; click Export again to replace it.</source>
        <translation>{file} ya existe; pulse Exportar de nuevo para reemplazarlo.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="428"/>
        <source>Choose a synced table, or a layer of the project.</source>
        <translation>Elija una tabla sincronizada o una capa del proyecto.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="432"/>
        <source>Choose a CRS with an authority code, such as EPSG:4326.</source>
        <translation>Elija un SRC con código de autoridad, como EPSG:4326.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="438"/>
        <source>QGIS cannot open table {table} of the local copy.</source>
        <translation>QGIS no puede abrir la tabla {table} de la copia local.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="450"/>
        <source>Choose a vector layer of the project.</source>
        <translation>Elija una capa vectorial del proyecto.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="468"/>
        <source>The filter is not a valid QGIS expression: {error}</source>
        <translation>El filtro no es una expresión de QGIS válida: {error}</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="476"/>
        <source>The filter names a field that {layer} does not have: {field}.</source>
        <translation>El filtro nombra un campo que {layer} no tiene: {field}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="512"/>
        <source>Exported {n} features of {source} to {path}.</source>
        <translation>Se exportaron {n} objetos de {source} a {path}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/export_dialog.py" line="379"/>
        <source>Selections and filters pick the features as they are now, so they are off for an export as of a past moment.</source>
        <translation>Las selecciones y los filtros eligen los objetos tal como están ahora, por lo que no se aplican a una exportación a fecha de un momento pasado.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/export_dialog.py" line="388"/>
        <source>The table as it stood at this moment (your local time), rebuilt from central's history.</source>
        <translation>La tabla tal como estaba en este momento (su hora local), reconstruida a partir del historial central.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/export_dialog.py" line="400"/>
        <source>Central's history of {table} starts at {time}.</source>
        <translation>El historial central de {table} empieza el {time}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/export_dialog.py" line="404"/>
        <source>Central keeps no history of {table} yet.</source>
        <translation>La base central aún no guarda historial de {table}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/export_dialog.py" line="618"/>
        <source>Exported {n} features of {source} as of {time} to {path}.</source>
        <translation>Se exportaron {n} objetos de {source} a fecha de {time} a {path}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks/export_task.py" line="393"/>
        <source>Asking central where the history of {table} starts</source>
        <translation>Preguntando a la base central dónde empieza el historial de {table}</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks/export_task.py" line="408"/>
        <source>Central could not say where its history starts: {reason}.</source>
        <translation>La base central no pudo indicar dónde empieza su historial: {reason}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing/export_algorithm.py" line="88"/>
        <source>As of (empty: now; else the table as it stood then, from central's history)</source>
        <translation>A fecha de (vacío: ahora; si no, la tabla tal como estaba entonces, según el historial central)</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="555"/>
        <source>TerraFusion export</source>
        <translation>Exportación de TerraFusion</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="544"/>
        <source>QGIS cannot open the exported file {path}.</source>
        <translation>QGIS no puede abrir el archivo exportado {path}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="556"/>
        <source>Open the folder</source>
        <translation>Abrir la carpeta</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_dialog.py" line="562"/>
        <source>Add to map</source>
        <translation>Añadir al mapa</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/export_algorithm.py" line="118"/>
        <source>The export was cancelled; no file was left behind.</source>
        <translation>La exportación se canceló; no quedó ningún archivo.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_task.py" line="143"/>
        <source>The export failed: {reason}.</source>
        <translation>La exportación falló: {reason}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_task.py" line="239"/>
        <source>TerraFusion export of {table}</source>
        <translation>Exportación de TerraFusion de {table}</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_task.py" line="263"/>
        <source>Layer {layer} has no geometry, so it cannot be written as {format}; choose csv, gpkg or geojson.</source>
        <translation>La capa {layer} no tiene geometría, por lo que no se puede escribir como {format}; elija csv, gpkg o geojson.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_task.py" line="275"/>
        <source>The export could not be written to {path}: {reason}.</source>
        <translation>No se pudo escribir la exportación en {path}: {reason}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_task.py" line="395"/>
        <source>GDAL could not write {file}: {reason}.</source>
        <translation>GDAL no pudo escribir {file}: {reason}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_task.py" line="403"/>
        <source>GDAL did not write all of {file}: {reason}.</source>
        <translation>GDAL no escribió todo {file}: {reason}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/export_task.py" line="333"/>
        <source>a feature was refused</source>
        <translation>se rechazó un objeto</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/plugin.py" line="79"/>
        <source>Sync Now</source>
        <translation>Sincronizar ahora</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/plugin.py" line="79"/>
        <source>Pull the central changes and push your edits now</source>
        <translation>Traer ahora los cambios de la central y enviar sus ediciones</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/plugin.py" line="82"/>
        <source>Export…</source>
        <translation>Exportar…</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/plugin.py" line="82"/>
        <source>Export a synced table or a layer of the project to a file</source>
        <translation>Exportar a un archivo una tabla sincronizada o una capa del proyecto</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/plugin.py" line="85"/>
        <source>Conflicts…</source>
        <translation>Conflictos…</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/plugin.py" line="85"/>
        <source>Compare and resolve the rows changed on both sides</source>
        <translation>Comparar y resolver las filas cambiadas en ambos lados</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/plugin.py" line="88"/>
        <source>Settings…</source>
        <translation>Configuración…</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/plugin.py" line="88"/>
        <source>Central database, schedule, conflict policies and API port of the agent</source>
        <translation>Base de datos central, programación, políticas de conflictos y puerto de la API del agente</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/export_algorithm.py" line="51"/>
        <source>Export a synced table</source>
        <translation>Exportar una tabla sincronizada</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/export_algorithm.py" line="54"/>
        <source>Writes a table of the local copy to a file with the sync agent's export engine, as the Export dialog and “terrafusion-agent export” do. Give a table or a preset from the agent's configuration. The format follows the output file's extension unless one is chosen; a shapefile is one .zip. The filter is an SQL expression on the table's columns, for example market_value &gt; 500000. A preset that names its own files writes into the output's folder. With “As of”, the table as it stood at that moment, rebuilt from central's history (empty: as it is now); a time typed as text is read as “terrafusion-agent export --as-of” reads it, in UTC unless it names its zone.</source>
        <translation>Escribe una tabla de la copia local en un archivo con el motor de exportación del agente de sincronización, como lo hacen el diálogo Exportar y «terrafusion-agent export». Indique una tabla o un preajuste de la configuración del agente. El formato sigue la extensión del archivo de salida salvo que se elija uno; un shapefile es un único .zip. El filtro es una expresión SQL sobre las columnas de la tabla, por ejemplo market_value &gt; 500000. Un preajuste que da nombre a sus propios archivos escribe en la carpeta de la salida. Con «A fecha de», la tabla tal como estaba en ese momento, reconstruida a partir del historial central (vacío: tal como está ahora); una hora escrita como texto se lee como la lee «terrafusion-agent export --as-of», en UTC salvo que indique su zona.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/export_algorithm.py" line="67"/>
        <source>Synced table</source>
        <translation>Tabla sincronizada</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/export_algorithm.py" line="69"/>
        <source>Export preset</source>
        <translation>Preajuste de exportación</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/export_algorithm.py" line="71"/>
        <source>Format (empty: from the output file&apos;s extension)</source>
        <translation>Formato (vacío: según la extensión del archivo de salida)</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/export_algorithm.py" line="74"/>
        <source>CRS (empty: the format&apos;s default or the table&apos;s)</source>
        <translation>SRC (vacío: el predeterminado del formato o el de la tabla)</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/export_algorithm.py" line="76"/>
        <source>Fields, comma separated (empty: all)</source>
        <translation>Campos, separados por comas (vacío: todos)</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/export_algorithm.py" line="78"/>
        <source>Filter (SQL expression on the table&apos;s columns)</source>
        <translation>Filtro (expresión SQL sobre las columnas de la tabla)</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/export_algorithm.py" line="81"/>
        <source>Output file</source>
        <translation>Archivo de salida</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/export_algorithm.py" line="84"/>
        <source>Features exported</source>
        <translation>Objetos exportados</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/export_algorithm.py" line="124"/>
        <source>Exported {n} features of {table} to {path}.</source>
        <translation>Se exportaron {n} objetos de {table} a {path}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/provider.py" line="22"/>
        <source>TerraFusion: sync and export the county&apos;s local copy</source>
        <translation>TerraFusion: sincronizar y exportar la copia local del condado</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/sync_algorithm.py" line="20"/>
        <source>Agent configuration file (empty: the agent&apos;s own)</source>
        <translation>Archivo de configuración del agente (vacío: el del propio agente)</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/sync_algorithm.py" line="46"/>
        <source>Pulls what changed in the central database into the local copy and pushes the local edits, detecting conflicts instead of overwriting. When the sync agent runs, it is asked to do it; otherwise the sync runs here, exactly as “terrafusion-agent sync” does.</source>
        <translation>Trae a la copia local lo que cambió en la base de datos central y envía las ediciones locales, detectando conflictos en lugar de sobrescribir. Si el agente de sincronización está en ejecución, se le pide que lo haga; si no, la sincronización se ejecuta aquí, exactamente como lo hace «terrafusion-agent sync».</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/sync_algorithm.py" line="56"/>
        <source>Result</source>
        <translation>Resultado</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/sync_algorithm.py" line="57"/>
        <source>Rows pulled</source>
        <translation>Filas recibidas</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/sync_algorithm.py" line="58"/>
        <source>Rows pushed</source>
        <translation>Filas enviadas</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/sync_algorithm.py" line="59"/>
        <source>New conflicts</source>
        <translation>Conflictos nuevos</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/sync_algorithm.py" line="60"/>
        <source>Synced by</source>
        <translation>Sincronizado por</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="395"/>
        <source>Syncing {table}…</source>
        <translation>Sincronizando {table}…</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/sync_algorithm.py" line="78"/>
        <source>Sync finished: {pulled} rows pulled, {pushed} pushed, {conflicts} new conflict(s).</source>
        <translation>Sincronización terminada: {pulled} filas recibidas, {pushed} enviadas, {conflicts} conflicto(s) nuevo(s).</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/settings_dialog.py" line="42"/>
        <source>Ask me (record a conflict)</source>
        <translation>Preguntarme (registrar un conflicto)</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/settings_dialog.py" line="42"/>
        <source>Central wins</source>
        <translation>Gana la central</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/settings_dialog.py" line="43"/>
        <source>Local wins</source>
        <translation>Gana la local</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/settings_dialog.py" line="51"/>
        <source>The authentication configuration {id} cannot be read; is QGIS&apos;s master password set?</source>
        <translation>No se puede leer la configuración de autenticación {id}; ¿está establecida la contraseña maestra de QGIS?</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/settings_dialog.py" line="54"/>
        <source>Only a user name and password authentication can be passed to the agent; for certificates use a PostgreSQL service.</source>
        <translation>Solo se puede pasar al agente una autenticación con usuario y contraseña; para certificados use un servicio de PostgreSQL.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/settings_dialog.py" line="58"/>
        <source>The authentication configuration {id} has no user name.</source>
        <translation>La configuración de autenticación {id} no tiene nombre de usuario.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/settings_dialog.py" line="67"/>
        <source>Testing the TerraFusion central connection</source>
        <translation>Probando la conexión central de TerraFusion</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/settings_dialog.py" line="99"/>
        <source>PostgreSQL service (pg_service.conf)</source>
        <translation>Servicio de PostgreSQL (pg_service.conf)</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/settings_dialog.py" line="99"/>
        <source>PostgreSQL server</source>
        <translation>Servidor PostgreSQL</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/settings_dialog.py" line="99"/>
        <source>SpatiaLite file</source>
        <translation>Archivo SpatiaLite</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/settings_dialog.py" line="109"/>
        <source>SpatiaLite databases (*.sqlite *.db)</source>
        <translation>Bases de datos SpatiaLite (*.sqlite *.db)</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/settings_dialog.py" line="115"/>
        <source>any free port</source>
        <translation>cualquier puerto libre</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/settings_dialog.py" line="140"/>
        <source>Configuration file: {path}</source>
        <translation>Archivo de configuración: {path}</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/settings_dialog.py" line="280"/>
        <source>Settings</source>
        <translation>Configuración</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/settings_dialog.py" line="198"/>
        <source>Writes the password to {path} (readable only by you), where PostgreSQL programs such as the agent look for it. Never into the agent&apos;s configuration.</source>
        <translation>Escribe la contraseña en {path} (legible solo por usted), donde la buscan los programas de PostgreSQL como el agente. Nunca en la configuración del agente.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/settings_dialog.py" line="210"/>
        <source>As above</source>
        <translation>Como arriba</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/settings_dialog.py" line="261"/>
        <source>Name at least one table to sync.</source>
        <translation>Indique al menos una tabla que sincronizar.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/settings_dialog.py" line="290"/>
        <source>The password is kept for the agent in {path}.</source>
        <translation>La contraseña se guarda para el agente en {path}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/settings_dialog.py" line="315"/>
        <source>Connecting…</source>
        <translation>Conectando…</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/settings_dialog.py" line="349"/>
        <source>The test was cancelled.</source>
        <translation>La prueba se canceló.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/settings_dialog.py" line="350"/>
        <source>Connected.</source>
        <translation>Conectado.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks.py" line="117"/>
        <source>TerraFusion sync</source>
        <translation>Sincronización de TerraFusion</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks.py" line="167"/>
        <source>The sync was cancelled.</source>
        <translation>La sincronización se canceló.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks.py" line="169"/>
        <source>The sync failed: {reason}.</source>
        <translation>La sincronización falló: {reason}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks.py" line="186"/>
        <source>Starting the TerraFusion agent</source>
        <translation>Iniciando el agente de TerraFusion</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks.py" line="219"/>
        <source>The agent could not be started: {reason}.</source>
        <translation>No se pudo iniciar el agente: {reason}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="73"/>
        <source>cancelled</source>
        <translation>cancelada</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="167"/>
        <source>Open the status page</source>
        <translation>Abrir la página de estado</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="179"/>
        <source>Syncing now</source>
        <translation>Sincronizando ahora</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="185"/>
        <source>Review…</source>
        <translation>Revisar…</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="205"/>
        <source>The agent was started but does not answer at {address}; see its log in {folder}.</source>
        <translation>El agente se inició pero no responde en {address}; consulte su registro en {folder}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="304"/>
        <source>Starting the agent…</source>
        <translation>Iniciando el agente…</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="236"/>
        <source>Started {when}</source>
        <translation>Iniciada el {when}</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="238"/>
        <source>Asked by: {trigger}</source>
        <translation>Solicitada por: {trigger}</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="251"/>
        <source>Another agent answers</source>
        <translation>Responde otro agente</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="268"/>
        <source>{when}, {result}, rows pulled: {pulled}, pushed: {pushed}</source>
        <translation>{when}, {result}, filas recibidas: {pulled}, enviadas: {pushed}</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="279"/>
        <source>No agent answers at {address}. Start it with “Start agent”, or run “terrafusion-agent run”.</source>
        <translation>Ningún agente responde en {address}. Inícielo con «Iniciar agente» o ejecute «terrafusion-agent run».</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="282"/>
        <source>The agent at {address} works on another local copy ({path}); give this one another API port in the settings.</source>
        <translation>El agente de {address} trabaja con otra copia local ({path}); asigne a esta otro puerto de API en la configuración.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="364"/>
        <source>Syncing…</source>
        <translation>Sincronizando…</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="389"/>
        <source>The agent is syncing…</source>
        <translation>El agente está sincronizando…</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="405"/>
        <source>Sync finished: {pulled} rows pulled, {pushed} pushed.</source>
        <translation>Sincronización terminada: {pulled} filas recibidas, {pushed} enviadas.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/terrafusion_dock.py" line="408"/>
        <source>{n} new conflict(s) wait for your decision.</source>
        <translation>{n} conflicto(s) nuevo(s) esperan su decisión.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/conflicts_dialog.py" line="68"/>
        <source>area {area} {unit}²</source>
        <translation>superficie {area} {unit}²</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/processing_provider/export_algorithm.py" line="40"/>
        <source>Shapefile (zipped)</source>
        <translation>Shapefile (comprimido en zip)</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/settings_dialog.py" line="365"/>
        <source>Settings saved to {path}. No agent is running; it reads them when it starts.</source>
        <translation>Configuración guardada en {path}. No hay ningún agente en ejecución; la leerá cuando se inicie.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/settings_dialog.py" line="372"/>
        <source>Settings saved to {path} and applied by the running agent.</source>
        <translation>Configuración guardada en {path} y aplicada por el agente en ejecución.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/settings_dialog.py" line="375"/>
        <source>Settings saved to {path}. The running agent applied the other changes; restart it to apply {keys}.</source>
        <translation>Configuración guardada en {path}. El agente en ejecución aplicó los demás cambios; reinícielo para aplicar {keys}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/settings_dialog.py" line="379"/>
        <source>Settings saved to {path}. Restart the agent to apply {keys}.</source>
        <translation>Configuración guardada en {path}. Reinicie el agente para aplicar {keys}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/settings_dialog.py" line="386"/>
        <source>Settings saved to {path}, but the running agent did not apply them: {reason}</source>
        <translation>Configuración guardada en {path}, pero el agente en ejecución no la aplicó: {reason}</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks/settings_tasks.py" line="26"/>
        <source>Applying the TerraFusion settings</source>
        <translation>Aplicando la configuración de TerraFusion</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks/settings_tasks.py" line="46"/>
        <source>the request failed ({reason}).</source>
        <translation>la petición falló ({reason}).</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>The central database: postgresql://user@host/database, a PostgreSQL service (postgresql:///?service=NAME) or a SpatiaLite file (sqlite:///PATH, a relative PATH being relative to this file&apos;s folder). Never a password: libpq finds it in its password file or the service.</source>
        <translation>La base de datos central: postgresql://usuario@servidor/base, un servicio de PostgreSQL (postgresql:///?service=NOMBRE) o un archivo SpatiaLite (sqlite:///RUTA; una RUTA relativa lo es a la carpeta de este archivo). Nunca una contraseña: libpq la encuentra en su archivo de contraseñas o en el servicio.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>The PostgreSQL schema of the synced tables and of the agent&apos;s bookkeeping.</source>
        <translation>El esquema de PostgreSQL de las tablas sincronizadas y de las tablas de control del agente.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>How long a connection to the central database may take before it counts as unreachable.</source>
        <translation>Cuánto puede tardar una conexión a la base de datos central antes de darla por inalcanzable.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>How long one statement on the central database may run before it is cancelled.</source>
        <translation>Cuánto puede durar una sentencia en la base de datos central antes de cancelarse.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>Change-log entries older than this many days are purged from the central database.</source>
        <translation>Las entradas del registro de cambios con más de este número de días se eliminan de la base de datos central.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>An optional streaming hot standby of the central database that pulls read from, as postgresql://user@host/database; pushes always go to central.url. A replica that is down or behind this copy is passed over for central.url. Only with a PostgreSQL central.</source>
        <translation>Una réplica en espera activa (streaming hot standby) opcional de la base de datos central de la que leen las descargas, como postgresql://usuario@servidor/base; los envíos van siempre a central.url. Una réplica caída o atrasada respecto a esta copia se deja de lado en favor de central.url. Solo con una central PostgreSQL.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>An address for a second listener that serves only /metrics and /health/live, for a Prometheus on the network (0.0.0.0 for every address); empty: none. The API, which shows owner names, stays on http.host.</source>
        <translation>Una dirección para un segundo servicio que solo ofrece /metrics y /health/live, para un Prometheus en la red (0.0.0.0 para todas las direcciones); vacío: ninguno. La API, que muestra nombres de propietarios, se queda en http.host.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>The port of the metrics-only listener; 0 takes any free port.</source>
        <translation>El puerto del servicio solo de métricas; 0 toma cualquier puerto libre.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>Where the agent POSTs a small JSON message when syncs fail several times in a row, when they work again after that, and when a sync finds new conflicts or rows central refused; empty: no alerts. It may carry a secret (user:password@, a token): it is masked like a password wherever it is shown.</source>
        <translation>Adónde el agente envía por POST un pequeño mensaje JSON cuando las sincronizaciones fallan varias veces seguidas, cuando vuelven a funcionar después, y cuando una sincronización encuentra conflictos nuevos o filas que la central rechazó; vacío: sin alertas. Puede llevar un secreto (usuario:contraseña@, un token): se oculta como una contraseña dondequiera que se muestre.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>How many syncs in a row must fail before the failure alert is sent (once per run of failures).</source>
        <translation>Cuántas sincronizaciones seguidas deben fallar antes de enviar la alerta de fallo (una vez por racha de fallos).</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>The audit history (who changed which row when, and its values before and after) older than this many days is purged from the central database.</source>
        <translation>El historial de auditoría (quién cambió qué fila y cuándo, con sus valores antes y después) con más de este número de días se elimina de la base de datos central.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>The local SpatiaLite copy that QGIS edits.</source>
        <translation>La copia local de SpatiaLite que edita QGIS.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>How long a write to the local copy waits while another program (QGIS saving an edit session) writes to it.</source>
        <translation>Cuánto espera una escritura en la copia local mientras otro programa (QGIS al guardar una sesión de edición) escribe en ella.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>The tables kept in sync, by name; at least one.</source>
        <translation>Las tablas que se mantienen sincronizadas, por nombre; al menos una.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>Seconds from one scheduled sync to the next.</source>
        <translation>Segundos entre una sincronización programada y la siguiente.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>What happens to a row changed on both sides: manual records a conflict for you to resolve, central_wins and local_wins keep that side&apos;s values.</source>
        <translation>Qué ocurre con una fila modificada en ambos lados: manual registra un conflicto para que usted lo resuelva; central_wins y local_wins conservan los valores de ese lado.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>The conflict policy of one table of sync.tables, instead of the general one.</source>
        <translation>La política de conflictos de una tabla de sync.tables, en lugar de la general.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>The address the agent&apos;s HTTP API listens on; keep 127.0.0.1 unless another machine must reach it.</source>
        <translation>La dirección en la que escucha la API HTTP del agente; mantenga 127.0.0.1 salvo que otra máquina deba acceder a ella.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>The port of the agent&apos;s HTTP API (health, metrics, the plugin&apos;s requests); 0 takes any free port.</source>
        <translation>El puerto de la API HTTP del agente (estado, métricas, peticiones del complemento); 0 toma cualquier puerto libre.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>The file holding the token every POST to the API must present; created on the first run.</source>
        <translation>El archivo con el token que debe presentar cada POST a la API; se crea en la primera ejecución.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>The least important messages the log keeps: DEBUG, INFO, WARNING or ERROR.</source>
        <translation>Los mensajes menos importantes que guarda el registro: DEBUG, INFO, WARNING o ERROR.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>The folder of the agent&apos;s log, JSON lines, rotated.</source>
        <translation>La carpeta del registro del agente, en líneas JSON, con rotación.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>The table the preset exports.</source>
        <translation>La tabla que exporta el preajuste.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>The file format: gpkg, geojson, shp, kml, csv or fgb.</source>
        <translation>El formato del archivo: gpkg, geojson, shp, kml, csv o fgb.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>The coordinate reference system of the file, such as EPSG:4326; without it the table&apos;s (GeoJSON and KML: EPSG:4326).</source>
        <translation>El sistema de referencia de coordenadas del archivo, como EPSG:4326; sin él, el de la tabla (GeoJSON y KML: EPSG:4326).</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>The fields the file holds, in this order; without it every field.</source>
        <translation>Los campos que contiene el archivo, en este orden; sin él, todos los campos.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>New names of fields in the file (field = &quot;new name&quot;).</source>
        <translation>Nombres nuevos de los campos en el archivo (campo = &quot;nombre nuevo&quot;).</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>An SQLite filter on the table&apos;s fields: only the rows it keeps leave.</source>
        <translation>Un filtro SQLite sobre los campos de la tabla: solo salen las filas que conserva.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>The most rows one export may hold; more is refused before anything is written.</source>
        <translation>El máximo de filas que puede contener una exportación; si hay más, se rechaza antes de escribir nada.</translation>
    </message>
    <message>
        <location filename="../agent/terrafusion_agent/config.py"/>
        <source>The file&apos;s name, with {table}, {preset}, {format}, {date}, {time} or {datetime} in it; the export&apos;s output is then a folder.</source>
        <translation>El nombre del archivo, con {table}, {preset}, {format}, {date}, {time} o {datetime}; la salida de la exportación es entonces una carpeta.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/pending_dialog.py" line="50"/>
        <source>added</source>
        <translation>añadida</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/pending_dialog.py" line="50"/>
        <source>changed</source>
        <translation>cambiada</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/pending_dialog.py" line="51"/>
        <source>deleted</source>
        <translation>eliminada</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/pending_dialog.py" line="55"/>
        <source>waits for the next sync</source>
        <translation>espera a la próxima sincronización</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/pending_dialog.py" line="45"/>
        <source>in conflict</source>
        <translation>en conflicto</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/pending_dialog.py" line="56"/>
        <source>refused by central</source>
        <translation>rechazada por la central</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/pending_dialog.py" line="137"/>
        <source>Reading the pending edits…</source>
        <translation>Leyendo las ediciones pendientes…</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/pending_dialog.py" line="181"/>
        <source>No pending edits: nothing waits to be sent to the central database.</source>
        <translation>No hay ediciones pendientes: nada espera a enviarse a la base de datos central.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/pending_dialog.py" line="183"/>
        <source>{n} edit(s) wait to be sent to the central database at the next sync.</source>
        <translation>{n} edición(es) esperan a enviarse a la base de datos central en la próxima sincronización.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/pending_dialog.py" line="188"/>
        <source>{n} wait in a conflict; resolve those in the Conflicts dialog.</source>
        <translation>{n} esperan en un conflicto; resuélvalas en el diálogo Conflictos.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/pending_dialog.py" line="191"/>
        <source>{n} were refused by the central database.</source>
        <translation>{n} fueron rechazadas por la base de datos central.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/pending_dialog.py" line="1"/>
        <source>Pending edits</source>
        <translation>Ediciones pendientes</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/pending_dialog.py" line="244"/>
        <source>(new row)</source>
        <translation>(fila nueva)</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/pending_dialog.py" line="264"/>
        <source>This edit waits in conflict {id}: resolve it in the Conflicts dialog.</source>
        <translation>Esta edición espera en el conflicto {id}: resuélvalo en el diálogo Conflictos.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/pending_dialog.py" line="317"/>
        <source>Discard edits</source>
        <translation>Descartar ediciones</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/pending_dialog.py" line="329"/>
        <source>Discard {n} edit(s)? Each row goes back to how it was at the last sync and nothing is sent to the central database. This cannot be undone.</source>
        <translation>¿Descartar {n} edición(es)? Cada fila vuelve a como estaba en la última sincronización y no se envía nada a la base de datos central. No se puede deshacer.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/pending_dialog.py" line="341"/>
        <source>Discard all {n} pending edit(s)? Every row goes back to how it was at the last sync and nothing is sent to the central database; edits waiting in a conflict stay. This cannot be undone.</source>
        <translation>¿Descartar las {n} ediciones pendientes? Cada fila vuelve a como estaba en la última sincronización y no se envía nada a la base de datos central; las ediciones que esperan en un conflicto se quedan. No se puede deshacer.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/pending_dialog.py" line="364"/>
        <source>{n} edit(s) discarded; the rows are back as they were at the last sync.</source>
        <translation>{n} edición(es) descartadas; las filas vuelven a estar como en la última sincronización.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/pending_dialog.py" line="369"/>
        <source>Layers in edit mode were not re-read: {layers}.</source>
        <translation>Las capas en modo de edición no se volvieron a leer: {layers}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/pending_dialog.py" line="385"/>
        <source>Discard selected ({n})</source>
        <translation>Descartar seleccionadas ({n})</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/pending_dialog.py" line="7"/>
        <source>Discard selected</source>
        <translation>Descartar seleccionadas</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks/pending_tasks.py" line="26"/>
        <source>Reading the TerraFusion pending edits</source>
        <translation>Leyendo las ediciones pendientes de TerraFusion</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks/pending_tasks.py" line="41"/>
        <source>The pending edits could not be read: {reason}.</source>
        <translation>No se pudieron leer las ediciones pendientes: {reason}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks/pending_tasks.py" line="57"/>
        <source>Discarding TerraFusion pending edits</source>
        <translation>Descartando ediciones pendientes de TerraFusion</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks/pending_tasks.py" line="73"/>
        <source>The edits could not be discarded: {reason}.</source>
        <translation>No se pudieron descartar las ediciones: {reason}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/plugin.py"/>
        <source>Feature History…</source>
        <translation>Historial de la entidad…</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/plugin.py"/>
        <source>A feature&apos;s changes as the central database recorded them; restore one of its versions</source>
        <translation>Los cambios de una entidad tal como los registró la base de datos central; restaure una de sus versiones</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>Inserted</source>
        <translation>Insertada</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>Updated</source>
        <translation>Actualizada</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>Deleted</source>
        <translation>Eliminada</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>agent {id}</source>
        <translation>agente {id}</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>{role} ({application})</source>
        <translation>{role} ({application})</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>Pushed by the TerraFusion agent {id}</source>
        <translation>Enviado por el agente de TerraFusion {id}</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>User: {user}</source>
        <translation>Usuario: {user}</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>Computer: {host}</source>
        <translation>Equipo: {host}</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>Database role: {role}</source>
        <translation>Rol de la base de datos: {role}</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>Application: {application}</source>
        <translation>Aplicación: {application}</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>Before the change</source>
        <translation>Antes del cambio</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>After the change</source>
        <translation>Después del cambio</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>Select a feature of a synced layer, or pick one on the map.</source>
        <translation>Seleccione una entidad de una capa sincronizada, o elíjala en el mapa.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>The layer {layer} is not a table of the TerraFusion local copy; only synced layers have a history.</source>
        <translation>La capa {layer} no es una tabla de la copia local de TerraFusion; solo las capas sincronizadas tienen historial.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>Reading the history…</source>
        <translation>Leyendo el historial…</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>{table} {key}: {n} change(s)</source>
        <translation>{table} {key}: {n} cambio(s)</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>The central database has recorded this table's changes since {when}.</source>
        <translation>La base de datos central registra los cambios de esta tabla desde {when}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>The central database keeps no changes of this table yet.</source>
        <translation>La base de datos central aún no guarda cambios de esta tabla.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>This change left the geometry as it was.</source>
        <translation>Este cambio dejó la geometría como estaba.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>This change deleted the feature: restore the version before it.</source>
        <translation>Este cambio eliminó la entidad: restaure la versión anterior a él.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>{table} {key}</source>
        <translation>{table} {key}</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>Restore this version</source>
        <translation>Restaurar esta versión</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>Make {feature} in your local copy what it was after the change of {when}?

This is your own edit: the next sync sends it to the central database, where a column changed since is a conflict for you to decide.</source>
        <translation>¿Devolver {feature} en su copia local a como quedó tras el cambio del {when}?

Es una edición suya: la próxima sincronización la envía a la base de datos central, donde una columna cambiada desde entonces es un conflicto que usted decide.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>{feature} already is its version of {when}; nothing changed.</source>
        <translation>{feature} ya es su versión del {when}; no cambió nada.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>{feature} is its version of {when} again ({columns}); the next sync sends it to the central database.</source>
        <translation>{feature} vuelve a ser su versión del {when} ({columns}); la próxima sincronización la envía a la base de datos central.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>Feature history</source>
        <translation>Historial de la entidad</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks/history_tasks.py"/>
        <source>Reading a feature&apos;s history from the central database</source>
        <translation>Leyendo el historial de una entidad en la base de datos central</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks/history_tasks.py"/>
        <source>The layer {layer} is not a table of the TerraFusion local copy ({path}); only synced layers have a history.</source>
        <translation>La capa {layer} no es una tabla de la copia local de TerraFusion ({path}); solo las capas sincronizadas tienen historial.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks/history_tasks.py"/>
        <source>The table {table} of the local copy is not synced, so it has no history.</source>
        <translation>La tabla {table} de la copia local no está sincronizada, así que no tiene historial.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks/history_tasks.py"/>
        <source>The layer {layer} does not show the key of table {table} ({columns}).</source>
        <translation>La capa {layer} no muestra la clave de la tabla {table} ({columns}).</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks/history_tasks.py"/>
        <source>This feature has no key yet; save your edits, then look at its history.</source>
        <translation>Esta entidad aún no tiene clave; guarde sus ediciones y consulte después su historial.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks/history_tasks.py"/>
        <source>The feature&apos;s history could not be read: {reason}.</source>
        <translation>No se pudo leer el historial de la entidad: {reason}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks/history_tasks.py"/>
        <source>Restoring a version of a feature</source>
        <translation>Restaurando una versión de una entidad</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/tasks/history_tasks.py"/>
        <source>The version could not be restored: {reason}.</source>
        <translation>No se pudo restaurar la versión: {reason}.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/history_panel.py"/>
        <source>Make the feature in your local copy what it was right after the selected change; the next sync sends it to the central database as your edit</source>
        <translation>Devolver la entidad en su copia local a como quedó justo después del cambio seleccionado; la próxima sincronización lo envía a la base de datos central como edición suya</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/terrafusion_dock.py"/>
        <source>Result: {result}</source>
        <translation>Resultado: {result}</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/terrafusion_dock.py"/>
        <source>Rows pulled: {pulled}, pushed: {pushed}, conflicts: {conflicts}</source>
        <translation>Filas recibidas: {pulled}, enviadas: {pushed}, conflictos: {conflicts}</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/export_dialog.py"/>
        <source>There is no local copy yet ({path}): the synced tables are offered here after the first sync (Sync now, in the TerraFusion panel). A layer of the project can be exported meanwhile.</source>
        <translation>Aún no hay copia local ({path}): las tablas sincronizadas se ofrecen aquí tras la primera sincronización (Sincronizar ahora, en el panel de TerraFusion). Mientras tanto se puede exportar una capa del proyecto.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/export_dialog.py"/>
        <source>None: the source has no geometry</source>
        <translation>Ninguno: el origen no tiene geometría</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/export_dialog.py"/>
        <source>Choose what to export first</source>
        <translation>Elija primero qué exportar</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/conflicts_dialog.py"/>
        <source>There is no local copy yet ({path}), so there is nothing to compare: conflicts can only arise once the first sync has made it.</source>
        <translation>Aún no hay copia local ({path}), así que no hay nada que comparar: los conflictos solo pueden surgir cuando la primera sincronización la haya creado.</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/settings_dialog.py"/>
        <source>seconds</source>
        <translation>segundos</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/settings_dialog.py"/>
        <source>minutes</source>
        <translation>minutos</translation>
    </message>
    <message>
        <location filename="../terrafusion_plugin/gui/settings_dialog.py"/>
        <source>hours</source>
        <translation>horas</translation>
    </message>
    <message>
        <location filename="../resources/styles/districts.qml"/>
        <source>Zoning</source>
        <translation>Zonificación</translation>
    </message>
    <message>
        <location filename="../resources/styles/districts.qml"/>
        <source>School</source>
        <translation>Escolar</translation>
    </message>
    <message>
        <location filename="../resources/styles/districts.qml"/>
        <source>Fire</source>
        <translation>Bomberos</translation>
    </message>
    <message>
        <location filename="../resources/styles/districts.qml"/>
        <source>Voting precinct</source>
        <translation>Distrito electoral</translation>
    </message>
    <message>
        <location filename="../resources/styles/districts.qml"/>
        <source>Levy</source>
        <translation>Gravamen</translation>
    </message>
</context>
<context>
    <name>ConflictsDialog</name>
    <message>
        <location filename="../resources/ui/conflicts_dialog.ui" line="14"/>
        <source>TerraFusion – Conflicts</source>
        <translation>TerraFusion – Conflictos</translation>
    </message>
    <message>
        <location filename="../resources/ui/conflicts_dialog.ui" line="56"/>
        <source>Conflict</source>
        <translation>Conflicto</translation>
    </message>
    <message>
        <location filename="../resources/ui/conflicts_dialog.ui" line="61"/>
        <source>Table</source>
        <translation>Tabla</translation>
    </message>
    <message>
        <location filename="../resources/ui/conflicts_dialog.ui" line="66"/>
        <source>Key</source>
        <translation>Clave</translation>
    </message>
    <message>
        <location filename="../resources/ui/conflicts_dialog.ui" line="71"/>
        <source>Changed on both sides</source>
        <translation>Cambiado en ambos lados</translation>
    </message>
    <message>
        <location filename="../resources/ui/conflicts_dialog.ui" line="76"/>
        <source>Detected</source>
        <translation>Detectado</translation>
    </message>
    <message>
        <location filename="../resources/ui/conflicts_dialog.ui" line="99"/>
        <source>Column</source>
        <translation>Columna</translation>
    </message>
    <message>
        <location filename="../resources/ui/conflicts_dialog.ui" line="104"/>
        <source>Before (last sync)</source>
        <translation>Antes (última sincronización)</translation>
    </message>
    <message>
        <location filename="../resources/ui/conflicts_dialog.ui" line="109"/>
        <source>Local (yours)</source>
        <translation>Local (la suya)</translation>
    </message>
    <message>
        <location filename="../resources/ui/conflicts_dialog.ui" line="114"/>
        <source>Central</source>
        <translation>Central</translation>
    </message>
    <message>
        <location filename="../resources/ui/conflicts_dialog.ui" line="162"/>
        <source>Keep your version of the selected rows; it is sent to the central database at the next sync</source>
        <translation>Mantener su versión de las filas seleccionadas; se envía a la base de datos central en la próxima sincronización</translation>
    </message>
    <message>
        <location filename="../resources/ui/conflicts_dialog.ui" line="165"/>
        <source>Keep local</source>
        <translation>Mantener la local</translation>
    </message>
    <message>
        <location filename="../resources/ui/conflicts_dialog.ui" line="172"/>
        <source>Take the central version of the selected rows into the local copy now</source>
        <translation>Llevar ahora la versión central de las filas seleccionadas a la copia local</translation>
    </message>
    <message>
        <location filename="../resources/ui/conflicts_dialog.ui" line="175"/>
        <source>Keep central</source>
        <translation>Mantener la central</translation>
    </message>
    <message>
        <location filename="../resources/ui/conflicts_dialog.ui" line="195"/>
        <source>Refresh</source>
        <translation>Actualizar</translation>
    </message>
    <message>
        <location filename="../resources/ui/conflicts_dialog.ui"/>
        <source>Keep</source>
        <translation>Mantener</translation>
    </message>
    <message>
        <location filename="../resources/ui/conflicts_dialog.ui"/>
        <source>Resolve</source>
        <translation>Resolver</translation>
    </message>
    <message>
        <location filename="../resources/ui/conflicts_dialog.ui"/>
        <source>Resolve the conflict shown with the version chosen, or the value typed, for each column changed on both sides</source>
        <translation>Resolver el conflicto mostrado con la versión elegida, o el valor escrito, para cada columna cambiada en ambos lados</translation>
    </message>
</context>
<context>
    <name>ExportDialog</name>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="14"/>
        <source>TerraFusion – Export</source>
        <translation>TerraFusion – Exportar</translation>
    </message>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="24"/>
        <source>Source</source>
        <translation>Origen</translation>
    </message>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="30"/>
        <source>A table of the local copy, exported by the sync agent&apos;s export engine</source>
        <translation>Una tabla de la copia local, exportada por el motor de exportación del agente de sincronización</translation>
    </message>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="33"/>
        <source>Synced table</source>
        <translation>Tabla sincronizada</translation>
    </message>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="53"/>
        <source>Any vector layer of the project, written by QGIS</source>
        <translation>Cualquier capa vectorial del proyecto, escrita por QGIS</translation>
    </message>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="56"/>
        <source>Project layer</source>
        <translation>Capa del proyecto</translation>
    </message>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="66"/>
        <source>Preset:</source>
        <translation>Preajuste:</translation>
    </message>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="80"/>
        <source>Export the synced table as it stood at a past moment, rebuilt from central's history</source>
        <translation>Exportar la tabla sincronizada tal como estaba en un momento pasado, reconstruida a partir del historial central</translation>
    </message>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="83"/>
        <source>As of:</source>
        <translation>A fecha de:</translation>
    </message>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="73"/>
        <source>Export presets from the agent&apos;s configuration: what may leave the office for one recipient</source>
        <translation>Preajustes de exportación de la configuración del agente: lo que puede salir de la oficina para un destinatario</translation>
    </message>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="83"/>
        <source>Output</source>
        <translation>Salida</translation>
    </message>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="92"/>
        <source>Format:</source>
        <translation>Formato:</translation>
    </message>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="102"/>
        <source>CRS:</source>
        <translation>SRC:</translation>
    </message>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="112"/>
        <source>File:</source>
        <translation>Archivo:</translation>
    </message>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="122"/>
        <source>Add the exported file to the map</source>
        <translation>Añadir el archivo exportado al mapa</translation>
    </message>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="132"/>
        <source>Features</source>
        <translation>Objetos</translation>
    </message>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="141"/>
        <source>Selected features only</source>
        <translation>Solo los objetos seleccionados</translation>
    </message>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="148"/>
        <source>Filter:</source>
        <translation>Filtro:</translation>
    </message>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="155"/>
        <source>Export only the features for which this QGIS expression is true</source>
        <translation>Exportar solo los objetos para los que esta expresión de QGIS es verdadera</translation>
    </message>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="190"/>
        <source>Fields</source>
        <translation>Campos</translation>
    </message>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="205"/>
        <source>Select all</source>
        <translation>Todos</translation>
    </message>
    <message>
        <location filename="../resources/ui/export_dialog.ui" line="212"/>
        <source>Clear</source>
        <translation>Ninguno</translation>
    </message>
</context>
<context>
    <name>PendingDialog</name>
    <message>
        <location filename="../resources/ui/pending_dialog.ui" line="14"/>
        <source>TerraFusion – Pending edits</source>
        <translation>TerraFusion – Ediciones pendientes</translation>
    </message>
    <message>
        <location filename="../resources/ui/pending_dialog.ui" line="35"/>
        <source>Table</source>
        <translation>Tabla</translation>
    </message>
    <message>
        <location filename="../resources/ui/pending_dialog.ui" line="61"/>
        <source>Key</source>
        <translation>Clave</translation>
    </message>
    <message>
        <location filename="../resources/ui/pending_dialog.ui" line="66"/>
        <source>Operation</source>
        <translation>Operación</translation>
    </message>
    <message>
        <location filename="../resources/ui/pending_dialog.ui" line="71"/>
        <source>State</source>
        <translation>Estado</translation>
    </message>
    <message>
        <location filename="../resources/ui/pending_dialog.ui" line="76"/>
        <source>Edited</source>
        <translation>Editada</translation>
    </message>
    <message>
        <location filename="../resources/ui/pending_dialog.ui" line="120"/>
        <source>Column</source>
        <translation>Columna</translation>
    </message>
    <message>
        <location filename="../resources/ui/pending_dialog.ui" line="125"/>
        <source>Before (last sync)</source>
        <translation>Antes (última sincronización)</translation>
    </message>
    <message>
        <location filename="../resources/ui/pending_dialog.ui" line="130"/>
        <source>After (yours)</source>
        <translation>Después (la suya)</translation>
    </message>
    <message>
        <location filename="../resources/ui/pending_dialog.ui" line="144"/>
        <source>Put the selected rows back as they were at the last sync; nothing is sent to the central database</source>
        <translation>Devolver las filas seleccionadas a como estaban en la última sincronización; no se envía nada a la base de datos central</translation>
    </message>
    <message>
        <location filename="../resources/ui/pending_dialog.ui" line="147"/>
        <source>Discard selected</source>
        <translation>Descartar seleccionadas</translation>
    </message>
    <message>
        <location filename="../resources/ui/pending_dialog.ui" line="154"/>
        <source>Put every edited row back as it was at the last sync, except those waiting in a conflict</source>
        <translation>Devolver cada fila editada a como estaba en la última sincronización, salvo las que esperan en un conflicto</translation>
    </message>
    <message>
        <location filename="../resources/ui/pending_dialog.ui" line="157"/>
        <source>Discard all…</source>
        <translation>Descartar todas…</translation>
    </message>
    <message>
        <location filename="../resources/ui/pending_dialog.ui" line="177"/>
        <source>Refresh</source>
        <translation>Actualizar</translation>
    </message>
</context>
<context>
    <name>SettingsDialog</name>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="14"/>
        <source>TerraFusion – Settings</source>
        <translation>TerraFusion – Configuración</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="37"/>
        <source>Central database</source>
        <translation>Base de datos central</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="48"/>
        <source>Connect through:</source>
        <translation>Conectar mediante:</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="67"/>
        <source>Service:</source>
        <translation>Servicio:</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="77"/>
        <source>A service of pg_service.conf: host, database, user and how to find the password, kept by PostgreSQL&apos;s own tools</source>
        <translation>Un servicio de pg_service.conf: servidor, base de datos, usuario y dónde encontrar la contraseña, gestionado con las herramientas de PostgreSQL</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="87"/>
        <source>The service is read from pg_service.conf by the agent itself, so it works while QGIS is closed.</source>
        <translation>El propio agente lee el servicio de pg_service.conf, así que funciona aunque QGIS esté cerrado.</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="101"/>
        <source>Host:</source>
        <translation>Servidor:</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="117"/>
        <source>Port:</source>
        <translation>Puerto:</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="139"/>
        <source>Database:</source>
        <translation>Base de datos:</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="153"/>
        <source>Authentication:</source>
        <translation>Autenticación:</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="163"/>
        <source>User:</source>
        <translation>Usuario:</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="170"/>
        <source>Without an authentication configuration: the user name; its password comes from libpq (~/.pgpass or PGPASSWORD)</source>
        <translation>Sin configuración de autenticación: el nombre de usuario; su contraseña la aporta libpq (~/.pgpass o PGPASSWORD)</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="177"/>
        <source>Let the agent use this password (kept in PostgreSQL&apos;s password file)</source>
        <translation>Permitir que el agente use esta contraseña (guardada en el archivo de contraseñas de PostgreSQL)</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="257"/>
        <source>File:</source>
        <translation>Archivo:</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="207"/>
        <source>An embedded central database, for demonstrations and single-seat offices.</source>
        <translation>Una base de datos central integrada, para demostraciones y oficinas de un solo puesto.</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="220"/>
        <source>Test connection</source>
        <translation>Probar la conexión</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="248"/>
        <source>Local copy</source>
        <translation>Copia local</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="270"/>
        <source>Agent</source>
        <translation>Agente</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="279"/>
        <source>API port:</source>
        <translation>Puerto de la API:</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="302"/>
        <source>Start the agent from QGIS when none is running</source>
        <translation>Iniciar el agente desde QGIS cuando no haya ninguno en ejecución</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="327"/>
        <source>Schedule and conflicts</source>
        <translation>Programación y conflictos</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="338"/>
        <source>Sync every:</source>
        <translation>Sincronizar cada:</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="361"/>
        <source>When both sides changed a row:</source>
        <translation>Si ambos lados cambiaron una fila:</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="383"/>
        <source>Synced table</source>
        <translation>Tabla sincronizada</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="388"/>
        <source>Conflict policy</source>
        <translation>Política de conflictos</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="398"/>
        <source>Add table</source>
        <translation>Añadir tabla</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui" line="405"/>
        <source>Remove table</source>
        <translation>Quitar tabla</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui"/>
        <source>The unit of the interval; the agent&apos;s configuration keeps it in seconds</source>
        <translation>La unidad del intervalo; la configuración del agente lo guarda en segundos</translation>
    </message>
    <message>
        <location filename="../resources/ui/settings_dialog.ui"/>
        <source>Schema:</source>
        <translation>Esquema:</translation>
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
        <location filename="../resources/ui/terrafusion_dock.ui" line="30"/>
        <source>State:</source>
        <translation>Estado:</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="37"/>
        <source>Checking…</source>
        <translation>Comprobando…</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="63"/>
        <source>Last sync:</source>
        <translation>Última sincronización:</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="80"/>
        <source>Next sync:</source>
        <translation>Próxima sincronización:</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="134"/>
        <source>Local copy:</source>
        <translation>Copia local:</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="192"/>
        <source>Ask the sync agent for its state now</source>
        <translation>Preguntar ahora al agente de sincronización por su estado</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="195"/>
        <source>Refresh</source>
        <translation>Actualizar</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="216"/>
        <source>Add the tables of the local copy to the project, in the group “TerraFusion”</source>
        <translation>Añadir las tablas de la copia local al proyecto, en el grupo «TerraFusion»</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="219"/>
        <source>Add synced layers</source>
        <translation>Añadir capas sincronizadas</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="47"/>
        <source>Open the agent&apos;s status page in the web browser</source>
        <translation>Abrir la página de estado del agente en el navegador web</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="97"/>
        <source>Edits made in the local copy that the next sync sends to the central database</source>
        <translation>Ediciones hechas en la copia local que la próxima sincronización enviará a la base de datos central</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="100"/>
        <source>Pending edits:</source>
        <translation>Ediciones pendientes:</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="114"/>
        <source>Rows changed both here and centrally, waiting for your decision</source>
        <translation>Filas cambiadas aquí y en la central, pendientes de su decisión</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="117"/>
        <source>Open conflicts:</source>
        <translation>Conflictos abiertos:</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="172"/>
        <source>Pull the central changes and push your edits now</source>
        <translation>Traer ahora los cambios de la central y enviar sus ediciones</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="175"/>
        <source>Sync now</source>
        <translation>Sincronizar ahora</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="182"/>
        <source>Start the sync agent in the background; it keeps syncing after QGIS is closed</source>
        <translation>Iniciar el agente de sincronización en segundo plano; sigue sincronizando después de cerrar QGIS</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="185"/>
        <source>Start agent</source>
        <translation>Iniciar agente</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="257"/>
        <source>Recent syncs</source>
        <translation>Sincronizaciones recientes</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="285"/>
        <source>Started</source>
        <translation>Inicio</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="226"/>
        <source>Export a synced table or a layer of the project to a file</source>
        <translation>Exportar a un archivo una tabla sincronizada o una capa del proyecto</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="229"/>
        <source>Export…</source>
        <translation>Exportar…</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="236"/>
        <source>Compare and resolve the rows changed on both sides</source>
        <translation>Comparar y resolver las filas cambiadas en ambos lados</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="239"/>
        <source>Conflicts…</source>
        <translation>Conflictos…</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="246"/>
        <source>Central database, schedule, conflict policies and API port of the agent</source>
        <translation>Base de datos central, programación, políticas de conflictos y puerto de la API del agente</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="249"/>
        <source>Settings…</source>
        <translation>Configuración…</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="116"/>
        <source>See the pending edits, their values before and after, and discard those that should not reach the central database</source>
        <translation>Ver las ediciones pendientes, sus valores antes y después, y descartar las que no deben llegar a la base de datos central</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui" line="119"/>
        <source>Review…</source>
        <translation>Revisar…</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui"/>
        <source>Feature history…</source>
        <translation>Historial de la entidad…</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui"/>
        <source>A feature&apos;s changes as the central database recorded them; restore one of its versions</source>
        <translation>Los cambios de una entidad tal como los registró la base de datos central; restaure una de sus versiones</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui"/>
        <source>When the sync started, with its result as an icon</source>
        <translation>Cuándo empezó la sincronización, con su resultado como icono</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui"/>
        <source>Rows pulled from the central database</source>
        <translation>Filas recibidas de la base de datos central</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui"/>
        <source>Rows pushed to the central database</source>
        <translation>Filas enviadas a la base de datos central</translation>
    </message>
    <message>
        <location filename="../resources/ui/terrafusion_dock.ui"/>
        <source>Conflicts found</source>
        <translation>Conflictos encontrados</translation>
    </message>
</context>
<context>
    <name>HistoryPanel</name>
    <message>
        <location filename="../resources/ui/history_panel.ui"/>
        <source>TerraFusion – Feature history</source>
        <translation>TerraFusion – Historial de la entidad</translation>
    </message>
    <message>
        <location filename="../resources/ui/history_panel.ui"/>
        <source>Click a feature of a synced layer on the map to see its history</source>
        <translation>Haga clic en una entidad de una capa sincronizada en el mapa para ver su historial</translation>
    </message>
    <message>
        <location filename="../resources/ui/history_panel.ui"/>
        <source>Pick on map</source>
        <translation>Elegir en el mapa</translation>
    </message>
    <message>
        <location filename="../resources/ui/history_panel.ui"/>
        <source>Show the history of the feature selected in the active layer, in the attribute table or on the map</source>
        <translation>Mostrar el historial de la entidad seleccionada en la capa activa, en la tabla de atributos o en el mapa</translation>
    </message>
    <message>
        <location filename="../resources/ui/history_panel.ui"/>
        <source>Follow the selection</source>
        <translation>Seguir la selección</translation>
    </message>
    <message>
        <location filename="../resources/ui/history_panel.ui"/>
        <source>Read the feature&apos;s history again</source>
        <translation>Volver a leer el historial de la entidad</translation>
    </message>
    <message>
        <location filename="../resources/ui/history_panel.ui"/>
        <source>Refresh</source>
        <translation>Actualizar</translation>
    </message>
    <message>
        <location filename="../resources/ui/history_panel.ui"/>
        <source>When</source>
        <translation>Cuándo</translation>
    </message>
    <message>
        <location filename="../resources/ui/history_panel.ui"/>
        <source>Who</source>
        <translation>Quién</translation>
    </message>
    <message>
        <location filename="../resources/ui/history_panel.ui"/>
        <source>Change</source>
        <translation>Cambio</translation>
    </message>
    <message>
        <location filename="../resources/ui/history_panel.ui"/>
        <source>Columns</source>
        <translation>Columnas</translation>
    </message>
    <message>
        <location filename="../resources/ui/history_panel.ui"/>
        <source>Column</source>
        <translation>Columna</translation>
    </message>
    <message>
        <location filename="../resources/ui/history_panel.ui"/>
        <source>Before</source>
        <translation>Antes</translation>
    </message>
    <message>
        <location filename="../resources/ui/history_panel.ui"/>
        <source>After</source>
        <translation>Después</translation>
    </message>
    <message>
        <location filename="../resources/ui/history_panel.ui"/>
        <source>Make the feature in your local copy what it was right after the selected change; the next sync sends it to the central database as your edit</source>
        <translation>Devolver la entidad en su copia local a como quedó justo después del cambio seleccionado; la próxima sincronización lo envía a la base de datos central como edición suya</translation>
    </message>
    <message>
        <location filename="../resources/ui/history_panel.ui"/>
        <source>Restore this version</source>
        <translation>Restaurar esta versión</translation>
    </message>
</context>
</TS>
